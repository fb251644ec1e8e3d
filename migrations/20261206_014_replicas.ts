/**
 * The replicas of the service that are running, each with a heartbeat and
 * whether it can build (has a Docker engine): a replica without one refuses
 * a build at once when none of them can, and ends builds that waited too
 * long for one, instead of holding the user's queue slots for ever.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('replicas', (table) => {
    /** The replica's runner id (host, pid and a random part), as it claims jobs. */
    table.string('id', 255).primary();
    table.boolean('can_build').notNullable().defaultTo(false);
    table.timestamp('started_at', { useTz: true }).notNullable();
    table.timestamp('heartbeat_at', { useTz: true }).notNullable();
    table.index(['can_build', 'heartbeat_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('replicas');
}
