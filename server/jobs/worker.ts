/**
 * Runs the queued jobs of one table, at most N at once per replica, with the
 * rules of jobs/claims.ts: claimed with a compare-and-set (replicas sharing a
 * database never run a job twice), a heartbeat while running, and a job whose
 * runner stopped beating (a restart, a crash) queued again or, after
 * repeated interruptions, ended — never left running.
 */
import type { Logger } from '../log.js';
import { TickLoop } from './loop.js';
import { runnerId } from './runner.js';

/** A table of jobs as a worker sees it. */
export interface JobQueue<J> {
  /** Oldest queued job ids first. */
  queued(limit: number): Promise<number[]>;
  claim(id: number, runner: string, now: Date): Promise<boolean>;
  get(id: number): Promise<J | undefined>;
  heartbeat(ids: number[], runner: string, now: Date): Promise<void>;
  recoverStale(before: Date, maxAttempts: number, now: Date): Promise<{ requeued: number; failed: number }>;
}

export interface JobWorkerOptions<J> {
  /** What a job is, for the log: "check", "pull". */
  what: string;
  queue: JobQueue<J>;
  /** Runs one claimed job to its end; what it returns goes to the log. */
  run: (job: J) => Promise<unknown>;
  logger: Logger;
  concurrency: number;
  /** How often to look for queued jobs and beat the heartbeat. */
  pollMs?: number;
  /** A job whose heartbeat is older than this is taken to be orphaned. */
  staleMs?: number;
  /** Claims after which an interrupted job ends. */
  maxAttempts?: number;
  /** Work of its own each tick (sweeps, clean-ups); `recovered` says whether jobs of a stopped replica were just recovered. */
  housekeeping?: (recovered: boolean) => Promise<void>;
}

export class JobWorker<J> {
  readonly id = runnerId();
  private readonly running = new Map<number, Promise<void>>();
  private readonly loop: TickLoop;
  private stopped = false;

  constructor(private readonly options: JobWorkerOptions<J>) {
    this.loop = new TickLoop(() => this.tick(), options.pollMs ?? 1000);
  }

  start(): void {
    this.stopped = false;
    this.loop.start();
  }

  /** Looks for jobs now (after one was queued), instead of at the next poll. */
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
    const { queue, logger, what } = this.options;
    try {
      const now = new Date();
      await queue.heartbeat([...this.running.keys()], this.id, now);
      const stale = await queue.recoverStale(
        new Date(now.getTime() - (this.options.staleMs ?? 15_000)),
        this.options.maxAttempts ?? 2,
        now,
      );
      if (stale.requeued || stale.failed) logger.warn({ ...stale }, `${what} jobs of a stopped replica recovered`);
      await this.options.housekeeping?.(stale.requeued + stale.failed > 0);
      const free = this.options.concurrency - this.running.size;
      if (free <= 0 || this.stopped) return;
      for (const id of await queue.queued(free * 2)) {
        if (this.running.size >= this.options.concurrency || this.stopped) break;
        if (!(await queue.claim(id, this.id, new Date()))) continue;
        const job = await queue.get(id);
        if (!job) continue;
        const run = this.options
          .run(job)
          .then((outcome) => logger.info({ [what]: id, outcome }, `${what} finished`))
          .catch((err: unknown) => logger.error({ err, [what]: id }, `${what} job failed`))
          .finally(() => {
            this.running.delete(id);
            this.nudge();
          });
        this.running.set(id, run);
      }
    } catch (err) {
      // The database or the engine may be restarting: try again at the next poll.
      logger.warn({ err }, `${what} worker could not reach the database or the Docker engine`);
    }
  }
}
