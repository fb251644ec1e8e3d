/**
 * A build's inputs in one JSON column, `inputs` (server/builds/inputs.ts):
 * a new input is a key there, not a column. Every existing build's input
 * columns move into it, blank ('') where they were null, so that old builds
 * stay shown and rebuildable. The uploaded files, the sealed git token and
 * the commit a build checked out keep their own columns.
 */
import type { Knex } from 'knex';
import { dropColumns } from './dropColumns.js';

/** The input columns of 010, by the key each has in `inputs`. */
const COLUMNS = {
  mode: 'mode',
  base: 'base',
  pip: 'pip',
  conda: 'conda',
  apt: 'apt',
  dockerfile: 'dockerfile',
  gitUrl: 'git_url',
  gitRef: 'git_ref',
  gitUsername: 'git_username',
} as const;

type Row = Record<string, unknown>;

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('builds', (table) => {
    /** { mode, base, pip, conda, apt, dockerfile, gitUrl, gitRef, gitUsername, … } */
    table.json('inputs').notNullable().defaultTo('{}');
  });
  const rows = (await knex('builds').select(['id', ...Object.values(COLUMNS)])) as Row[];
  for (const row of rows) {
    const inputs = Object.fromEntries(Object.entries(COLUMNS).map(([key, column]) => [key, row[column] ?? '']));
    await knex('builds')
      .where({ id: row.id })
      .update({ inputs: JSON.stringify(inputs) });
  }
  // build_inputs refers to builds: a copy of the table (knex's way on SQLite) would take its rows along.
  await dropColumns(knex, 'builds', ...Object.values(COLUMNS));
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('builds', (table) => {
    table.string('mode', 16).notNullable().defaultTo('packages');
    table.string('base', 600).nullable();
    table.text('pip').notNullable().defaultTo('');
    table.text('conda').notNullable().defaultTo('');
    table.text('apt').notNullable().defaultTo('');
    table.text('dockerfile').notNullable().defaultTo('');
    table.string('git_url', 2048).nullable();
    table.string('git_ref', 255).nullable();
    table.string('git_username', 255).nullable();
  });
  const rows = (await knex('builds').select(['id', 'inputs'])) as Row[];
  for (const row of rows) {
    const inputs = (typeof row.inputs === 'string' ? JSON.parse(row.inputs) : row.inputs) as Record<string, unknown>;
    const text = (key: keyof typeof COLUMNS) => (typeof inputs[key] === 'string' ? inputs[key] : '');
    const orNull = (key: keyof typeof COLUMNS) => text(key) || null;
    await knex('builds')
      .where({ id: row.id })
      .update({
        mode: text('mode') || 'packages',
        base: orNull('base'),
        pip: text('pip'),
        conda: text('conda'),
        apt: text('apt'),
        dockerfile: text('dockerfile'),
        git_url: orNull('gitUrl'),
        git_ref: orNull('gitRef'),
        git_username: orNull('gitUsername'),
      });
  }
  await dropColumns(knex, 'builds', 'inputs');
}
