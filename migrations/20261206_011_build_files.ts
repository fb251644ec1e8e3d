/**
 * Uploaded build files stored once per content: `build_files` holds each
 * content once, under its sha256; `build_inputs` names, for each build, the
 * files of its context (name, position, content). A rebuild names the same
 * contents again instead of copying them, and a content goes when no build
 * names it any more (with the last image whose builds did).
 *
 * Until now each build row kept a JSON copy of all its files (`builds.files`,
 * base64): those move here, so that old builds stay rebuildable, and the
 * column goes. One build's files are read at a time.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';

/** A build's files as the `files` column held them. */
type PackedFiles = Array<{ name: string; content: string }>;

/** How many build ids are read per query while moving (their files are read one build at a time). */
const PAGE = 500;

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('build_files', (table) => {
    /** The content's sha256, hex. */
    table.string('sha256', 64).primary();
    table.bigInteger('size').notNullable();
    table.binary('content').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
  });
  const inputs: Array<{ build_id: number; position: number; name: string; sha256: string }> = [];
  for (let after = 0; ;) {
    const ids = (await knex('builds').whereNotNull('files').where('id', '>', after).orderBy('id').limit(PAGE).pluck('id')) as number[];
    if (ids.length === 0) break;
    for (const id of ids) {
      const row = (await knex('builds').where({ id }).first('files')) as { files: Buffer | string };
      const packed = JSON.parse(Buffer.from(row.files).toString('utf8')) as PackedFiles;
      for (const [position, file] of packed.entries()) {
        const content = Buffer.from(file.content, 'base64');
        const sha256 = createHash('sha256').update(content).digest('hex');
        await knex('build_files').insert({ sha256, size: content.length, content, created_at: new Date() }).onConflict('sha256').ignore();
        inputs.push({ build_id: Number(id), position, name: file.name, sha256 });
      }
    }
    after = Number(ids[ids.length - 1]);
  }
  // The column goes before anything refers to builds: SQLite drops a column by copying the table.
  await knex.schema.alterTable('builds', (table) => {
    table.dropColumn('files');
  });
  await knex.schema.createTable('build_inputs', (table) => {
    table.integer('build_id').unsigned().notNullable().references('builds.id').onDelete('CASCADE');
    /** The file's place among the build's files (the order they were uploaded in). */
    table.integer('position').notNullable();
    table.string('name', 255).notNullable();
    /** A content in use is never deleted: the one place that removes contents checks for inputs, and this key holds it. */
    table.string('sha256', 64).notNullable().references('build_files.sha256').onDelete('RESTRICT');
    table.primary(['build_id', 'position']);
    table.index(['sha256']);
  });
  for (let i = 0; i < inputs.length; i += PAGE) await knex('build_inputs').insert(inputs.slice(i, i + PAGE));
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('builds', (table) => {
    table.binary('files').nullable();
  });
  const ids = (await knex('build_inputs').distinct('build_id').orderBy('build_id').pluck('build_id')) as number[];
  for (const id of ids) {
    const files = (await knex('build_inputs')
      .join('build_files', 'build_files.sha256', 'build_inputs.sha256')
      .where('build_inputs.build_id', id)
      .orderBy('build_inputs.position')
      .select('build_inputs.name', 'build_files.content')) as Array<{ name: string; content: Buffer }>;
    const packed: PackedFiles = files.map((f) => ({ name: f.name, content: Buffer.from(f.content).toString('base64') }));
    await knex('builds')
      .where({ id })
      .update({ files: Buffer.from(JSON.stringify(packed)) });
  }
  await knex.schema.dropTable('build_inputs');
  await knex.schema.dropTable('build_files');
}
