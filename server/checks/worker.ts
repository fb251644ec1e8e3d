/**
 * The worker that runs check jobs (jobs/worker.ts), and sweeps the check
 * containers that a killed replica left behind: every half minute, and at
 * once after jobs of a stopped replica were recovered.
 */
import type { Knex } from 'knex';
import { JobWorker } from '../jobs/worker.js';
import type { Logger } from '../log.js';
import type { DockerEngine } from '../runner/engine.js';
import { removeOrphanContainers } from '../runner/orphans.js';
import type { CheckService } from './service.js';
import type { CheckRow, CheckStore } from './store.js';

/** How often containers left by killed replicas are looked for. */
const ORPHAN_SWEEP_MS = 30_000;

export interface CheckWorkerOptions {
  db: Knex;
  store: CheckStore;
  checks: CheckService;
  /** The engine run checks use; undefined without one. */
  engine: DockerEngine | undefined;
  logger: Logger;
  concurrency: number;
  pollMs?: number;
  staleMs?: number;
}

export function checkWorker(options: CheckWorkerOptions): JobWorker<CheckRow> {
  const { store, engine, logger } = options;
  let lastSweep = 0;
  return new JobWorker<CheckRow>({
    db: options.db,
    kind: options.checks.jobKind,
    load: (id) => store.get(id),
    run: (row, job) => options.checks.execute(row, job),
    logger,
    concurrency: options.concurrency,
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
    ...(options.staleMs !== undefined ? { staleMs: options.staleMs } : {}),
    async housekeeping(recovered) {
      if (!engine || (!recovered && Date.now() - lastSweep < ORPHAN_SWEEP_MS)) return;
      lastSweep = Date.now();
      const running = async (id: number) => (await store.get(id))?.status === 'running';
      const removed = await removeOrphanContainers(engine, await store.deploymentId(), running).catch(() => 0);
      if (removed > 0) logger.warn({ removed }, 'removed check containers left by a stopped replica');
    },
  });
}
