/**
 * Runs queued builds on this replica's builder, at most
 * CUSTOM_IMAGES_BUILD_CONCURRENCY at once, with the claiming and heartbeat
 * rules of every job (jobs/worker.ts): a build whose replica died is queued
 * again, and after a second interruption ended in words. A replica without
 * an engine claims none. At shutdown the builds in hand are stopped and
 * queued again.
 *
 * Every replica also says in `replicas` that it is alive and whether it can
 * build, so that one without an engine knows whether a build it queues will
 * ever run; and such a replica ends the builds that waited longer than a
 * bound while no replica could build, freeing their owners' queue slots.
 */
import type { Knex } from 'knex';
import type { Logger } from '../log.js';
import { REPLICA_BEAT_MS, type ReplicaStore } from '../jobs/replicas.js';
import { JobWorker } from '../jobs/worker.js';
import type { BuildService } from './service.js';
import type { BuildRow, BuildStore } from './store.js';

/** How long queued builds wait for a replica with an engine before they end: longer than a rolling restart of one. */
export const BUILD_ENGINE_WAIT_MS = 10 * 60_000;

export interface BuildWorkerOptions {
  db: Knex;
  store: BuildStore;
  builds: BuildService;
  /** Whether this replica can build (has an engine). */
  canBuild: boolean;
  /** Where the replicas say that they are alive and whether they build. */
  replicas: ReplicaStore;
  logger: Logger;
  concurrency: number;
  pollMs?: number;
  staleMs?: number;
  /** How long a queued build may wait while no replica can build (default {@link BUILD_ENGINE_WAIT_MS}). */
  engineWaitMs?: number;
  now?: () => Date;
}

/** What a build that waited in vain for an engine says. */
export function noEngineMessage(waitMs: number): string {
  const minutes = Math.max(1, Math.round(waitMs / 60_000));
  return `No build engine of this site ran for ${minutes} minute${minutes === 1 ? '' : 's'} (no replica of custom-images with a Docker engine), so this build could not start; it was ended to free your place in the queue. Ask the hub admin, then press Rebuild.`;
}

export class BuildWorker {
  private readonly jobs: JobWorker<BuildRow>;
  private readonly now: () => Date;
  private lastBeat = 0;

  constructor(private readonly options: BuildWorkerOptions) {
    const { store } = options;
    this.now = options.now ?? (() => new Date());
    this.jobs = new JobWorker<BuildRow>({
      db: options.db,
      kind: options.builds.jobKind,
      load: (id) => store.get(id),
      takes: async () => (options.canBuild ? {} : undefined),
      run: (row, job) => options.builds.execute(row, job),
      logger: options.logger,
      concurrency: options.concurrency,
      ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
      ...(options.staleMs !== undefined ? { staleMs: options.staleMs } : {}),
      housekeeping: () => this.keepHouse(),
    });
  }

  start(): void {
    this.lastBeat = 0;
    this.jobs.start();
  }

  nudge(): void {
    this.jobs.nudge();
  }

  /** Stops claiming, stops the builds in hand (they are queued again) and waits for them; then leaves `replicas`. */
  async stop(): Promise<void> {
    await this.jobs.stop();
    await this.options.replicas.leave(this.jobs.id).catch((err: unknown) => {
      // Its row goes stale by itself: the others stop counting on it after REPLICA_LIVE_MS.
      this.options.logger.warn({ err }, 'could not remove this replica from the replicas table');
    });
  }

  /** Each tick: the replica's heartbeat (every REPLICA_BEAT_MS), and on a replica that cannot build, the builds that waited in vain. */
  private async keepHouse(): Promise<void> {
    const { replicas, canBuild } = this.options;
    const now = this.now();
    if (now.getTime() - this.lastBeat < REPLICA_BEAT_MS) return;
    if (this.lastBeat === 0) await replicas.forgetGone(now);
    await replicas.beat(this.jobs.id, canBuild, now);
    this.lastBeat = now.getTime();
    // A replica that builds is itself the engine the queue waits for.
    if (!canBuild) await this.endBuildsWithoutEngine(now);
  }

  private async endBuildsWithoutEngine(now: Date): Promise<void> {
    const waitMs = this.options.engineWaitMs ?? BUILD_ENGINE_WAIT_MS;
    const since = new Date(now.getTime() - waitMs);
    const lastBuilder = await this.options.replicas.lastBuilderBeat();
    if (lastBuilder && lastBuilder >= since) return;
    const ended = await this.options.store.endQueuedBefore(since, noEngineMessage(waitMs), now);
    if (ended > 0) {
      this.options.logger.warn(
        { builds: ended, waitedMs: waitMs },
        'queued builds ended: no replica with a Docker engine is running (set DOCKER_HOST on at least one replica)',
      );
    }
  }
}
