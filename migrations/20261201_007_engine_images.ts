/**
 * Images the service keeps in a Docker engine for launches: pulled in the
 * background after a check passed (so that Start does not wait for a pull),
 * by one replica for all that share the engine, and removed again when no
 * launch used them for a while. One row per engine and pinned image.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('engine_images', (table) => {
    table.increments('id').primary();
    /** The Docker engine's own id (docker info). */
    table.string('engine', 128).notNullable();
    /** registry/repository@digest */
    table.string('image', 1024).notNullable();
    /** queued, pulling, ready, failed or removed */
    table.string('status', 16).notNullable();
    /** Whose credentials pull it: the image configuration that asked last. */
    table.string('owner', 255);
    table.integer('image_id');
    /** Whether this service pulled it (only then may it remove it). */
    table.boolean('pulled_by_service').notNullable().defaultTo(false);
    table.bigInteger('current_bytes').notNullable().defaultTo(0);
    table.bigInteger('total_bytes').notNullable().defaultTo(0);
    table.float('fraction').notNullable().defaultTo(0);
    table.text('message');
    table.string('runner', 255);
    table.timestamp('heartbeat_at', { useTz: true });
    table.integer('attempts').notNullable().defaultTo(0);
    table.timestamp('requested_at', { useTz: true }).notNullable();
    table.timestamp('finished_at', { useTz: true });
    table.timestamp('last_used_at', { useTz: true });
    table.unique(['engine', 'image']);
    table.index(['engine', 'status']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('engine_images');
}
