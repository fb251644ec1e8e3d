/**
 * Users' image configurations, their sealed registry credentials, and the
 * audit trail. A credential belongs to one image and goes with it.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('images', (table) => {
    table.increments('id').primary();
    table.string('owner', 255).notNullable().index();
    table.string('name', 100).notNullable();
    table.string('system', 64).notNullable();
    /** As the user typed it, to show it back. */
    table.string('reference_input', 512).notNullable();
    /** registry/repository[:tag][@digest], normalised. */
    table.string('reference', 512).notNullable();
    table.string('registry', 255).notNullable();
    /** Null: the system's default mount path. */
    table.string('mount_path', 1024).nullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.timestamp('updated_at', { useTz: true }).notNullable();
  });
  await knex.schema.createTable('credentials', (table) => {
    table.string('id', 36).primary();
    table.integer('image_id').unsigned().notNullable().unique().references('images.id').onDelete('CASCADE');
    table.string('owner', 255).notNullable().index();
    table.string('registry', 255).notNullable();
    table.string('username', 255).notNullable();
    table.binary('ciphertext').notNullable();
    table.binary('nonce').notNullable();
    table.string('key_id', 32).notNullable();
    table.timestamp('updated_at', { useTz: true }).notNullable();
  });
  await knex.schema.createTable('audit', (table) => {
    table.increments('id').primary();
    table.timestamp('at', { useTz: true }).notNullable().index();
    table.string('actor', 255).notNullable();
    table.string('actor_kind', 16).notNullable();
    table.string('action', 64).notNullable();
    table.string('target_type', 32).notNullable();
    table.string('target_id', 64).notNullable();
    /** Never a secret: what changed, in plain fields. */
    table.json('details').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('audit');
  await knex.schema.dropTable('credentials');
  await knex.schema.dropTable('images');
}
