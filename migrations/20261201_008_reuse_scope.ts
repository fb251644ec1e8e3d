/**
 * Who may reuse a result. A check's result was reused for any check of the
 * same digest, and a layer's index for any manifest that named the layer: a
 * registry that claims another user's digest got that user's result and the
 * files of their private layers. Checks now record the repository and the
 * access (anonymous, or a fingerprint of the credential) they read the image
 * with, and layer indexes the scope they were read in; results and indexes
 * from before are reused by nobody (they are made again when needed).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('checks', (table) => {
    /** registry/repository the check read. */
    table.string('repository', 512).nullable();
    /** "public" (no credentials), or "credential:" and a keyed fingerprint of the credential. */
    table.string('access', 128).nullable();
  });
  await knex.schema.alterTable('layer_indexes', (table) => {
    /** null: read without credentials, anyone may reuse it; else repository and access it was read with. */
    table.string('scope', 700).nullable();
  });
  await knex('layer_indexes').update({ scope: 'unknown' });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('layer_indexes', (table) => {
    table.dropColumn('scope');
  });
  await knex.schema.alterTable('checks', (table) => {
    table.dropColumn('access');
    table.dropColumn('repository');
  });
}
