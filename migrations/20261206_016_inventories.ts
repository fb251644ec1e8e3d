/**
 * Package inventories, one per platform manifest digest and platform: what
 * the image's final filesystem holds (Pythons, Python, conda and OS
 * packages, Jupyter versions, kernelspecs, CUDA), recorded by the static
 * check and shared by every image with that digest. And forecasts: every
 * image on a system judged again from its inventory against a hub version
 * or policy an admin enters, published to the images' owners.
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
    /** The inventory's ruleInputs, as JSON beside it: a forecast over a thousand images reads only these. */
    table.text('rule_inputs').notNullable();
    /** The tile's line ("Python 3.11 · 212 packages · JupyterLab 4.2"): a page of tiles decompresses no inventory. */
    table.text('summary').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.primary(['digest', 'platform']);
  });
  await knex.schema.createTable('forecasts', (table) => {
    table.increments('id').primary();
    table.string('system', 64).notNullable();
    /** What was judged: the hub version and the policy's rules (server/inventory/forecast.ts). */
    table.json('target').notNullable();
    /** One entry per image: owner, name, digest, verdict and reasons. */
    table.json('results').notNullable();
    table.integer('fail_count').notNullable();
    table.integer('warn_count').notNullable();
    table.integer('pass_count').notNullable();
    table.integer('unknown_count').notNullable();
    table.string('created_by', 255).notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
    /** Set when an admin shows it to the images' owners on their tiles. */
    table.string('published_by', 255).nullable();
    table.timestamp('published_at', { useTz: true }).nullable();
    table.index(['system', 'published_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('forecasts');
  await knex.schema.dropTable('inventories');
}
