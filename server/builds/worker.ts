/**
 * Runs queued builds on this replica's builder, at most
 * CUSTOM_IMAGES_BUILD_CONCURRENCY at once, with the claiming and heartbeat
 * rules of every job (jobs/worker.ts): a build whose replica died is queued
 * again, and after a second interruption ended in words. A replica without
 * an engine claims none. At shutdown the builds in hand are stopped and
 * queued again.
 */
import type { Logger } from '../log.js';
import { JobWorker } from '../jobs/worker.js';
import type { BuildService } from './service.js';
import type { BuildRow, BuildStore } from './store.js';

export interface BuildWorkerOptions {
  store: BuildStore;
  builds: BuildService;
  /** Whether this replica can build (has an engine). */
  canBuild: boolean;
  logger: Logger;
  concurrency: number;
  pollMs?: number;
  staleMs?: number;
}

export class BuildWorker {
  private readonly jobs: JobWorker<BuildRow>;
  private stopping = new AbortController();

  constructor(options: BuildWorkerOptions) {
    const { store } = options;
    this.jobs = new JobWorker<BuildRow>({
      what: 'build',
      queue: {
        queued: async (limit) => (options.canBuild ? store.queued(limit) : []),
        get: (id) => store.get(id),
        claim: (id, runner, now) => store.claim(id, runner, now),
        heartbeat: (ids, runner, now) => store.heartbeat(ids, runner, now),
        recoverStale: (before, maxAttempts, now) => store.recoverStale(before, maxAttempts, now),
      },
      run: (job) => options.builds.execute(job, this.jobs.id, this.stopping.signal),
      logger: options.logger,
      concurrency: options.concurrency,
      ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
      ...(options.staleMs !== undefined ? { staleMs: options.staleMs } : {}),
    });
  }

  start(): void {
    this.stopping = new AbortController();
    this.jobs.start();
  }

  nudge(): void {
    this.jobs.nudge();
  }

  /** Stops claiming, stops the builds in hand (they are queued again) and waits for them. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.jobs.stop();
  }
}
