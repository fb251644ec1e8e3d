/**
 * A launch link's launch (build, check, stop, start), one per visitor: kept
 * here, not in the memory of the replica that took the POST, so that the
 * progress page reads it through whichever replica its request reaches.
 * The replica that runs it writes each step and beats while it waits, each
 * write only while the row is still that launch's (`launch_id`); a launch
 * whose beat stopped ended with its replica.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('link_launches', (table) => {
    table.string('owner', 255).primary();
    /** Which launch the row is: a replica writes only its own (a newer launch may have taken the row). */
    table.string('launch_id', 64).notNullable();
    table.string('step', 16).notNullable();
    table.text('message').nullable();
    table.text('repo').notNullable();
    table.string('commit', 64).notNullable();
    table.string('system', 255).notNullable();
    table.integer('image_id').notNullable();
    table.string('image_name', 255).notNullable();
    table.integer('build_number').nullable();
    table.text('landing').notNullable();
    table.timestamp('started_at', { useTz: true }).notNullable();
    table.timestamp('beat_at', { useTz: true }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('link_launches');
}
