/**
 * The worker that runs queued builds on this replica's builder, at most
 * CUSTOM_IMAGES_BUILD_CONCURRENCY at once, with the lifecycle of jobs/: a
 * build whose replica died is queued again, and after a second interruption
 * ended in words; at shutdown the builds in hand are stopped and queued
 * again. A replica without an engine claims none.
 */
import type { Knex } from 'knex';
import type { Logger } from '../log.js';
import { JobWorker } from '../jobs/worker.js';
import type { BuildService } from './service.js';
import type { BuildRow, BuildStore } from './store.js';

export interface BuildWorkerOptions {
  db: Knex;
  store: BuildStore;
  builds: BuildService;
  /** Whether this replica can build (has an engine). */
  canBuild: boolean;
  logger: Logger;
  concurrency: number;
  pollMs?: number;
  staleMs?: number;
}

export function buildWorker(options: BuildWorkerOptions): JobWorker<BuildRow> {
  return new JobWorker<BuildRow>({
    db: options.db,
    kind: options.builds.jobKind,
    load: (id) => options.store.get(id),
    takes: async () => (options.canBuild ? {} : undefined),
    run: (row, job) => options.builds.execute(row, job),
    logger: options.logger,
    concurrency: options.concurrency,
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
    ...(options.staleMs !== undefined ? { staleMs: options.staleMs } : {}),
  });
}
