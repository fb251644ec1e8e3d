/**
 * Revisions: the digests each image has had, numbered per image, recorded
 * when a check passes or fails for content the image did not have (after an
 * edit, a rebuild or a moved tag), with the check, its status, the reason
 * and, for built images, the build. Checks may be candidates (a moved tag's
 * new content, read without becoming the image's until its owner accepts
 * it). Systems say how many revisions an image keeps.
 *
 * Images checked before this migration get their current content as
 * revision 1 ("first check"), from their newest finished check.
 */
import type { Knex } from 'knex';

type Row = Record<string, unknown>;

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('revisions', (table) => {
    table.increments('id').primary();
    table.integer('image_id').unsigned().notNullable().references('images.id').onDelete('CASCADE');
    table.string('owner', 255).notNullable();
    /** 1, 2, … per image. */
    table.integer('number').notNullable();
    /** The image reference the check read (a tag, or pinned `…@sha256:`). */
    table.string('reference', 600).notNullable();
    /** What the reference resolved to (an index or a manifest). */
    table.string('digest', 200).notNullable();
    /** The platform manifest a launch starts; null when the reference named one directly. */
    table.string('manifest_digest', 200).nullable();
    table.string('platform', 64).notNullable();
    /** The newest check of this content for the image. */
    table.integer('check_id').unsigned().nullable().references('checks.id').onDelete('SET NULL');
    /** passed or failed: the status of that check. */
    table.string('status', 16).notNullable();
    /** first, edited, rebuilt or tag_moved */
    table.string('reason', 16).notNullable();
    table.integer('build_id').unsigned().nullable().references('builds.id').onDelete('SET NULL');
    table.integer('build_number').nullable();
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.timestamp('updated_at', { useTz: true }).notNullable();
    table.unique(['image_id', 'number']);
  });
  await knex.schema.alterTable('checks', (table) => {
    /** A moved tag's new content, read without becoming the image's check until its owner accepts it. */
    table.boolean('candidate').notNullable().defaultTo(false);
  });
  await knex.schema.alterTable('systems', (table) => {
    /** How many revisions each image keeps; null: the default (10). */
    table.integer('kept_revisions').nullable();
  });

  const images = (await knex('images').select('id', 'owner')) as Row[];
  for (const image of images) {
    const check = (await knex('checks')
      .where({ image_id: image.id, owner: image.owner })
      .whereIn('status', ['passed', 'failed'])
      .whereNotNull('digest')
      .orderBy('id', 'desc')
      .first('id', 'reference', 'digest', 'manifest_digest', 'platform', 'status', 'finished_at', 'created_at')) as Row | undefined;
    if (!check) continue;
    const at = check.finished_at ?? check.created_at;
    await knex('revisions').insert({
      image_id: image.id,
      owner: image.owner,
      number: 1,
      reference: check.reference,
      digest: check.digest,
      manifest_digest: check.manifest_digest ?? null,
      platform: check.platform,
      check_id: check.id,
      status: check.status,
      reason: 'first',
      build_id: null,
      build_number: null,
      created_at: at,
      updated_at: at,
    });
  }
}

export async function down(knex: Knex): Promise<void> {
  // The table that refers to checks first: SQLite rebuilds checks to drop a column.
  await knex.schema.dropTable('revisions');
  await knex.schema.alterTable('checks', (table) => {
    table.dropColumn('candidate');
  });
  await knex.schema.alterTable('systems', (table) => {
    table.dropColumn('kept_revisions');
  });
}
