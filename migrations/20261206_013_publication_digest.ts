/**
 * A publication names the digest the admin published: the image is offered
 * for everyone only while its checked digest is that one. Publications made
 * before get the digest of the check they were served by, when the image's
 * newest check passed for its current reference; otherwise none, and an
 * admin publishes them again.
 */
import type { Knex } from 'knex';
import { dropColumns } from './dropColumns.js';

type Row = Record<string, unknown>;

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('images', (table) => {
    /** The platform manifest's digest (what a launch starts) the admin published; null before this column. */
    table.string('published_digest', 200).nullable();
  });
  const published = (await knex('images').whereNotNull('published_at').select('id', 'owner', 'reference', 'system')) as Row[];
  for (const image of published) {
    const check = (await knex('checks')
      .where({ image_id: image.id, owner: image.owner })
      .orderBy('id', 'desc')
      .first('status', 'reference', 'system', 'digest', 'manifest_digest')) as Row | undefined;
    if (!check || check.status !== 'passed' || check.reference !== image.reference || check.system !== image.system) continue;
    const digest = check.manifest_digest ?? check.digest;
    if (digest) await knex('images').where({ id: image.id }).update({ published_digest: digest });
  }
}

export async function down(knex: Knex): Promise<void> {
  // Checks, builds and credentials refer to images: a copy of the table would take them along.
  await dropColumns(knex, 'images', 'published_digest');
}
