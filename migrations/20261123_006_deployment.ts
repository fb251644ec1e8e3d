/**
 * The deployment's own id, created once with its database: replicas share it,
 * and it tells this deployment's check containers from another's on a shared
 * Docker engine (a second hub, a staging copy), which the orphan sweep must
 * leave alone.
 */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('deployment', (table) => {
    table.string('id', 36).primary();
  });
  await knex('deployment').insert({ id: randomUUID() });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('deployment');
}
