/** Check jobs: which replica runs a job, its heartbeat, and how often it was started. */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('checks', (table) => {
    table.string('runner', 100).nullable();
    table.timestamp('heartbeat_at', { useTz: true }).nullable();
    table.integer('attempts').notNullable().defaultTo(0);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('checks', (table) => {
    table.dropColumn('runner');
    table.dropColumn('heartbeat_at');
    table.dropColumn('attempts');
  });
}
