/**
 * Keeping the site within its disk (issue 26): each system's quotas and
 * retention, the manifests builds pushed to the site registry (kept after
 * their image and build rows are gone, so that they can still be removed),
 * the data volumes the service made and whether they are still anyone's,
 * when a user's volume was last started, users who asked for their data to
 * go, and the clean-up runs (jobs, one per slot for all replicas).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('systems', (table) => {
    /** Quotas and retention (server/storage/settings.ts); null: the configured defaults. */
    table.json('storage').nullable();
  });
  await knex.schema.createTable('built_manifests', (table) => {
    table.increments('id').primary();
    /** registry/repository, as the build pushed it. */
    table.string('repository', 600).notNullable();
    table.string('digest', 200).notNullable();
    table.string('owner', 255).notNullable();
    table.string('system', 64).notNullable();
    /** No foreign key: the row outlives its image, whose deletion starts its grace. */
    table.integer('image_id').notNullable().index();
    table.string('image_name', 100).notNullable();
    /** The newest build that pushed this digest. */
    table.integer('build_number').notNullable();
    table.timestamp('pushed_at', { useTz: true }).notNullable();
    table.timestamp('image_deleted_at', { useTz: true }).nullable();
    /** When a run first saw it no longer its image's current digest for a reason no newer build explains (an edit). */
    table.timestamp('unused_since', { useTz: true }).nullable();
    /** [{digest, size}] of its config and layers as the registry states them; null until measured. */
    table.json('blobs').nullable();
    table.bigInteger('bytes').nullable();
    table.timestamp('last_launched_at', { useTz: true }).nullable();
    /** kept, deleting (a run is deleting it: resumed by the next if that run stops) or deleted */
    table.string('status', 16).notNullable().defaultTo('kept');
    table.integer('delete_run').nullable();
    table.timestamp('deleted_at', { useTz: true }).nullable();
    /** Why the last attempt to delete it failed. */
    table.text('message').nullable();
    table.unique(['repository', 'digest']);
    table.index(['owner', 'system']);
    table.index(['status']);
  });
  await knex.schema.createTable('data_volumes', (table) => {
    table.increments('id').primary();
    /** The Docker engine's id (docker info). */
    table.string('engine', 128).notNullable();
    table.string('name', 255).notNullable();
    table.string('user_name', 255).notNullable();
    table.string('system', 64).notNullable();
    table.bigInteger('bytes').nullable();
    table.boolean('in_use').notNullable().defaultTo(false);
    table.timestamp('first_seen_at', { useTz: true }).notNullable();
    table.timestamp('seen_at', { useTz: true }).notNullable();
    /** Since when nobody owns it (user removed at the hub, system removed, user asked); null while someone does. */
    table.timestamp('orphaned_at', { useTz: true }).nullable();
    table.string('orphan_reason', 32).nullable();
    /** An admin keeps it whatever happens. */
    table.string('kept_by', 255).nullable();
    table.timestamp('kept_at', { useTz: true }).nullable();
    /** present, removing (resumed by the next run), removed or gone (removed by someone else) */
    table.string('status', 16).notNullable().defaultTo('present');
    table.integer('remove_run').nullable();
    table.timestamp('removed_at', { useTz: true }).nullable();
    table.unique(['engine', 'name']);
    table.index(['status']);
  });
  await knex.schema.createTable('volume_launches', (table) => {
    table.string('user_name', 255).notNullable();
    table.string('system', 64).notNullable();
    table.timestamp('last_at', { useTz: true }).notNullable();
    table.primary(['user_name', 'system']);
  });
  await knex.schema.createTable('data_removal_requests', (table) => {
    table.string('user_name', 255).primary();
    table.timestamp('requested_at', { useTz: true }).notNullable();
  });
  await knex.schema.createTable('cleanup_runs', (table) => {
    table.increments('id').primary();
    /** registry (built manifests, once per deployment) or volumes (data volumes, once per engine) */
    table.string('kind', 16).notNullable();
    /** The engine a volumes run is for; '' for registry runs. */
    table.string('engine', 128).notNullable().defaultTo('');
    /** Runs of one lane (kind and engine) take turns. */
    table.string('lane', 160).notNullable();
    /** A scheduled run's slot: every replica asks for it, one row is made. Null for runs an admin asked for. */
    table.string('slot', 200).nullable().unique();
    /** queued, running, succeeded or failed */
    table.string('status', 16).notNullable().index();
    table.string('requested_by', 255).notNullable();
    table.string('runner', 255).nullable();
    table.timestamp('heartbeat_at', { useTz: true }).nullable();
    table.integer('attempts').notNullable().defaultTo(0);
    table.timestamp('created_at', { useTz: true }).notNullable();
    table.timestamp('started_at', { useTz: true }).nullable();
    table.timestamp('finished_at', { useTz: true }).nullable();
    /** The audit entries of launches read up to this id. */
    table.integer('audit_cursor').nullable();
    /** What the run removed and kept, in numbers and names (server/storage/run.ts). */
    table.json('summary').nullable();
    /** Storage per user and system when it ran. */
    table.json('usage').nullable();
    table.text('message').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('cleanup_runs');
  await knex.schema.dropTable('data_removal_requests');
  await knex.schema.dropTable('volume_launches');
  await knex.schema.dropTable('data_volumes');
  await knex.schema.dropTable('built_manifests');
  await knex.schema.alterTable('systems', (table) => {
    table.dropColumn('storage');
  });
}
