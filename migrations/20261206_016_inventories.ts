/**
 * Package inventories, one per platform manifest digest and platform: what
 * the image's final filesystem holds (Pythons, Python, conda and OS
 * packages, Jupyter versions, kernelspecs, CUDA), recorded by the static
 * check and shared by every image with that digest.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('inventories', (table) => {
    table.string('digest', 200).notNullable();
    table.string('platform', 64).notNullable();
    /** The inventory's shape (server/inventory/schema.ts); another one is read again by the next check. */
    table.integer('version').notNullable();
    /** gzip-compressed JSON of the inventory. */
    table.binary('data').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.primary(['digest', 'platform']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('inventories');
}
