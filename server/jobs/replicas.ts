/**
 * Rows of `replicas`: the service's running replicas, each beating a
 * heartbeat and saying whether it can build (has a Docker engine). Only
 * replicas with an engine claim builds, so a replica without one asks here
 * whether anyone will ever run a build it queues. Through knex.
 */
import type { Knex } from 'knex';
import { toDateOrNull } from '../store/rows.js';

/** How often a replica beats. */
export const REPLICA_BEAT_MS = 5_000;
/** A replica whose heartbeat is older than this is taken to be gone (several missed beats: a busy database is not a death). */
export const REPLICA_LIVE_MS = 30_000;
/** Rows of replicas silent this long are removed: they stopped without saying so (a crash, a killed pod). */
const FORGET_MS = 86_400_000;

export class ReplicaStore {
  constructor(private readonly db: Knex) {}

  /** Says that replica `id` is alive (and whether it can build); the first beat creates its row. */
  async beat(id: string, canBuild: boolean, now: Date): Promise<void> {
    await this.db('replicas')
      .insert({ id, can_build: canBuild, started_at: now, heartbeat_at: now })
      .onConflict('id')
      .merge(['can_build', 'heartbeat_at']);
  }

  /** Removes replica `id`: it is stopping, and another replica should know at once. */
  async leave(id: string): Promise<void> {
    await this.db('replicas').where({ id }).delete();
  }

  /** Removes the rows of replicas that stopped without a word long ago. */
  async forgetGone(now: Date): Promise<void> {
    await this.db('replicas')
      .where('heartbeat_at', '<', new Date(now.getTime() - FORGET_MS))
      .delete();
  }

  /** The newest heartbeat of any replica that can build; null when none ever beat (or all left). */
  async lastBuilderBeat(): Promise<Date | null> {
    const row = (await this.db('replicas').where({ can_build: true }).max('heartbeat_at as at').first()) as { at: unknown } | undefined;
    return toDateOrNull(row?.at);
  }

  /** Whether a replica that can build is alive at `now`. */
  async builderAlive(now: Date): Promise<boolean> {
    const last = await this.lastBuilderBeat();
    return last !== null && last.getTime() >= now.getTime() - REPLICA_LIVE_MS;
  }
}
