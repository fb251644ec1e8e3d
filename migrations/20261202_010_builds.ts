/**
 * Builds: an image the service builds for its owner, from a base image plus
 * packages or from a Dockerfile with an uploaded or git context. Each build
 * is a job row (claimed like checks) that keeps its own inputs, so that a
 * rebuild repeats them exactly and a restart finds everything it needs.
 * Systems get their build settings (enabled, push target, network, bases).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('systems', (table) => {
    /** Null: building is off. */
    table.json('build').nullable();
  });
  await knex.schema.createTable('builds', (table) => {
    table.increments('id').primary();
    table.integer('image_id').unsigned().notNullable().references('images.id').onDelete('CASCADE');
    table.string('owner', 255).notNullable().index();
    /** 1, 2, … per image: the tag the result is pushed as. */
    table.integer('number').notNullable();
    /** queued, running, succeeded or failed */
    table.string('status', 16).notNullable().index();
    /** While running: context, building or pushing. */
    table.string('phase', 16).nullable();
    table.string('requested_by', 255).notNullable();
    /** packages or dockerfile */
    table.string('mode', 16).notNullable();
    table.string('base', 600).nullable();
    table.text('pip').notNullable();
    table.text('conda').notNullable();
    table.text('apt').notNullable();
    /** The Dockerfile built: the researcher's, or the one written for packages. */
    table.text('dockerfile').notNullable();
    /** Uploaded files (names and contents, size-limited); null without uploads. */
    table.binary('files').nullable();
    table.json('file_names').notNullable();
    table.string('git_url', 2048).nullable();
    table.string('git_ref', 255).nullable();
    table.string('git_username', 255).nullable();
    /** The git token, sealed like a registry password. */
    table.binary('git_token_ciphertext').nullable();
    table.binary('git_token_nonce').nullable();
    table.string('git_token_key_id', 32).nullable();
    /** The commit the git context was checked out at. */
    table.string('git_commit', 64).nullable();
    /** registry/repository:number */
    table.string('target', 600).notNullable();
    table.string('digest', 128).nullable();
    table.integer('step').notNullable().defaultTo(0);
    table.integer('steps').notNullable().defaultTo(0);
    table.text('message').nullable();
    table.text('log').notNullable();
    table.string('runner', 255).nullable();
    table.timestamp('heartbeat_at', { useTz: true }).nullable();
    table.integer('attempts').notNullable().defaultTo(0);
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.timestamp('started_at', { useTz: true }).nullable();
    table.timestamp('finished_at', { useTz: true }).nullable();
    table.unique(['image_id', 'number']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('builds');
  await knex.schema.alterTable('systems', (table) => {
    table.dropColumn('build');
  });
}
