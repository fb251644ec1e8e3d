/**
 * Every image has an optional short description, written by its owner and
 * shown on its tile, in the API and in the hub's spawn form; shared and
 * published images show it too, beside an admin's publication text
 * (`published_description`, which stays the admin's). Old images get ''.
 * An image's history is read from the audit log by target: an index makes
 * that one lookup however long the log grows.
 */
import type { Knex } from 'knex';
import { dropColumns } from './dropColumns.js';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('images', (table) => {
    /** Plain text, at most 300 characters (images/schema.ts); escaped wherever it is shown. */
    table.string('description', 300).notNullable().defaultTo('');
  });
  await knex.schema.alterTable('audit', (table) => {
    table.index(['target_type', 'target_id', 'id'], 'audit_target_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit', (table) => {
    table.dropIndex(['target_type', 'target_id', 'id'], 'audit_target_index');
  });
  // Checks, builds and credentials refer to images: a copy of the table would take them along.
  await dropColumns(knex, 'images', 'description');
}
