/**
 * Sharing: an image shared with hub groups (a row per group), published by an
 * admin for everyone on its system (columns of the image), and how many
 * launches other users made of it.
 */
import type { Knex } from 'knex';
import { dropColumns } from './dropColumns.js';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('image_shares', (table) => {
    table.integer('image_id').notNullable();
    /** A JupyterHub group name. */
    table.string('group_name', 255).notNullable();
    table.string('shared_by', 255).notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.primary(['image_id', 'group_name']);
    table.index(['group_name']);
  });
  await knex.schema.alterTable('images', (table) => {
    /** Set when an admin published the image for everyone on its system. */
    table.timestamp('published_at', { useTz: true }).nullable();
    table.string('published_by', 255).nullable();
    table.string('published_description', 300).nullable();
    table.integer('launches_by_others').notNullable().defaultTo(0);
  });
}

export async function down(knex: Knex): Promise<void> {
  // Checks, builds and credentials refer to images: a copy of the table would take them along.
  await dropColumns(knex, 'images', 'launches_by_others', 'published_description', 'published_by', 'published_at');
  await knex.schema.dropTable('image_shares');
}
