/**
 * Runs queued check jobs, at most N at once per replica. Jobs are claimed
 * with a compare-and-set so that replicas sharing one database never run the
 * same job twice; running jobs beat a heartbeat, and a job whose runner
 * stopped beating (a restart, a crash) is queued again or, after repeated
 * interruptions, ended in error — never left running.
 */
import { TickLoop } from '../jobs/loop.js';
import { runnerId } from '../jobs/runner.js';
import type { Logger } from '../log.js';
import type { CheckService } from './service.js';
import type { CheckStore } from './store.js';

export interface WorkerOptions {
  store: CheckStore;
  checks: CheckService;
  logger: Logger;
  concurrency: number;
  /** How often to look for queued jobs and beat the heartbeat. */
  pollMs?: number;
  /** A job whose heartbeat is older than this is taken to be orphaned. */
  staleMs?: number;
  /** Claims after which an interrupted job ends in error. */
  maxAttempts?: number;
}

/** How often containers left by killed replicas are looked for. */
const ORPHAN_SWEEP_MS = 30_000;

export class CheckWorker {
  readonly id = runnerId();
  private readonly running = new Map<number, Promise<void>>();
  private readonly loop: TickLoop;
  private stopped = false;
  private lastSweep = 0;

  constructor(private readonly options: WorkerOptions) {
    this.loop = new TickLoop(() => this.tick(), options.pollMs ?? 1000);
  }

  start(): void {
    this.stopped = false;
    this.loop.start();
  }

  /** Asks the worker to look for jobs now (after a request), instead of at its next poll. */
  nudge(): void {
    this.loop.nudge();
  }

  /** Stops claiming; waits for the jobs in hand (the caller bounds the wait). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop.stop();
    await Promise.allSettled(this.running.values());
  }

  private async tick(): Promise<void> {
    const { store, logger } = this.options;
    try {
      const now = new Date();
      await store.heartbeat([...this.running.keys()], this.id, now);
      const stale = await store.recoverStale(new Date(now.getTime() - (this.options.staleMs ?? 15_000)), this.options.maxAttempts ?? 2, now);
      if (stale.requeued || stale.failed) logger.warn({ ...stale }, 'check jobs of a stopped replica recovered');
      // After a recovery, the recovered jobs' containers are orphans now: sweep at once.
      if (stale.requeued || stale.failed || Date.now() - this.lastSweep > ORPHAN_SWEEP_MS) {
        this.lastSweep = Date.now();
        const removed = await this.options.checks.removeOrphanContainers().catch(() => 0);
        if (removed > 0) logger.warn({ removed }, 'removed check containers left by a stopped replica');
      }
      const free = this.options.concurrency - this.running.size;
      if (free <= 0 || this.stopped) return;
      for (const id of await store.queued(free * 2)) {
        if (this.running.size >= this.options.concurrency || this.stopped) break;
        if (!(await store.claim(id, this.id, new Date()))) continue;
        const job = await store.get(id);
        if (!job) continue;
        const run = this.options.checks
          .execute(job)
          .then((status) => logger.info({ check: id, status }, 'check finished'))
          .catch((err: unknown) => logger.error({ err, check: id }, 'check job failed'))
          .finally(() => {
            this.running.delete(id);
            this.nudge();
          });
        this.running.set(id, run);
      }
    } catch (err) {
      // The database may be restarting: try again at the next poll.
      logger.warn({ err }, 'check worker could not reach the database');
    }
  }
}
