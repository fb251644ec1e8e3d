/**
 * Check results (and, with the run check, jobs), and layer indexes kept by
 * layer digest so that shared base layers are read once.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('checks', (table) => {
    table.increments('id').primary();
    table.integer('image_id').unsigned().nullable().references('images.id').onDelete('CASCADE').index();
    table.string('owner', 255).notNullable().index();
    table.string('system', 64).notNullable();
    table.string('reference', 512).notNullable();
    table.string('digest', 200).nullable();
    table.string('manifest_digest', 200).nullable();
    table.string('platform', 64).notNullable();
    table.string('policy_hash', 64).notNullable();
    /** static: the registry check; full: static and a run in Docker. */
    table.string('kind', 16).notNullable();
    /** queued, running, passed, failed, error */
    table.string('status', 16).notNullable().index();
    table.json('findings').notNullable();
    table.json('facts').nullable();
    table.text('log').notNullable();
    table.json('progress').nullable();
    table.integer('reused_from').unsigned().nullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.timestamp('started_at', { useTz: true }).nullable();
    table.timestamp('finished_at', { useTz: true }).nullable();
    table.integer('duration_ms').nullable();
    table.index(['digest', 'platform', 'policy_hash', 'kind']);
  });
  await knex.schema.createTable('layer_indexes', (table) => {
    table.string('digest', 200).primary();
    table.integer('version').notNullable();
    /** gzip-compressed JSON of the layer's path index. */
    table.binary('data').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('layer_indexes');
  await knex.schema.dropTable('checks');
}
