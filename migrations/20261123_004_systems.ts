/**
 * Systems that admins define, and registry credentials admins store for a
 * registry pattern (used for every image under it).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('systems', (table) => {
    table.string('slug', 64).primary();
    table.string('display_name', 100).notNullable();
    table.text('description').notNullable();
    table.boolean('enabled').notNullable();
    table.json('allowed_registries').notNullable();
    table.json('mount_prefixes').notNullable();
    table.string('default_mount_path', 1024).notNullable();
    table.string('platform', 64).notNullable();
    table.string('spawner', 16).notNullable();
    table.json('policy').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.timestamp('updated_at', { useTz: true }).notNullable();
  });
  await knex.schema.createTable('registry_credentials', (table) => {
    table.string('id', 36).primary();
    /** registry.example.com/* or registry.example.com/team/* */
    table.string('pattern', 512).notNullable().unique();
    table.string('username', 255).notNullable();
    table.binary('ciphertext').notNullable();
    table.binary('nonce').notNullable();
    table.string('key_id', 32).notNullable();
    table.string('updated_by', 255).notNullable();
    table.timestamp('updated_at', { useTz: true }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('registry_credentials');
  await knex.schema.dropTable('systems');
}
