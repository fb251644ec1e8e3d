/**
 * Runs the queued jobs of one kind, at most N at once per replica, with the
 * lifecycle of jobs/: claimed with a compare-and-set (replicas sharing a
 * database never run a job twice), a heartbeat while running, a deadline,
 * and a job whose runner stopped beating (a restart, a crash) queued again
 * or, after repeated interruptions, ended — never left running.
 */
import type { Knex } from 'knex';
import type { Logger } from '../log.js';
import { beatJobs } from './beatJobs.js';
import type { JobKind } from './kind.js';
import { TickLoop } from './loop.js';
import { queuedJobs } from './queuedJobs.js';
import { recoverStaleJobs } from './recoverStaleJobs.js';
import { runnerId } from './runner.js';
import { holdJob, type RunningJob } from './running.js';

/** How long a run may go on after its deadline before the lifecycle writes its end itself. */
export const DEADLINE_GRACE_MS = 30_000;

export interface JobWorkerOptions<J> {
  db: Knex;
  kind: JobKind;
  /** Reads a claimed job's row. */
  load: (id: number) => Promise<J | undefined>;
  /** Runs one claimed job to its end, writing through `job`; what it returns goes to the log. */
  run: (row: J, job: RunningJob) => Promise<unknown>;
  /**
   * Which queued jobs this replica takes: a filter on their columns (this
   * engine's pulls), `{}` for all, or undefined for none (no engine to build with).
   */
  takes?: () => Promise<Record<string, unknown> | undefined>;
  logger: Logger;
  concurrency: number;
  /** How often to look for queued jobs and beat the heartbeat. */
  pollMs?: number;
  /** A job whose heartbeat is older than this is taken to be orphaned. */
  staleMs?: number;
  /** How long a run may go on past its deadline before the lifecycle ends it (DEADLINE_GRACE_MS). */
  deadlineGraceMs?: number;
  /** Work of its own each tick (sweeps, clean-ups); `recovered` says whether jobs of a stopped replica were just recovered. */
  housekeeping?: (recovered: boolean) => Promise<void>;
}

export class JobWorker<J> {
  readonly id = runnerId();
  private readonly running = new Map<number, { job: RunningJob; settled: Promise<void> }>();
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

  /**
   * Stops claiming. Jobs of a kind that waits run to their end; jobs of a
   * kind that is queued again are stopped and given back. Waits for them
   * (the caller bounds the wait).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop.stop();
    if (this.options.kind.onStop === 'requeue') for (const { job } of this.running.values()) job.abort('stop');
    await Promise.allSettled([...this.running.values()].map((r) => r.settled));
  }

  private async tick(): Promise<void> {
    const { db, kind, logger } = this.options;
    try {
      const now = new Date();
      await beatJobs(db, kind, [...this.running.keys()], this.id, now);
      const stale = await recoverStaleJobs(db, kind, new Date(now.getTime() - (this.options.staleMs ?? 15_000)), now);
      if (stale.requeued || stale.failed) logger.warn({ ...stale }, `${kind.what} jobs of a stopped replica recovered`);
      await this.options.housekeeping?.(stale.requeued + stale.failed > 0);
      const free = this.options.concurrency - this.running.size;
      if (free <= 0 || this.stopped) return;
      const takes = this.options.takes ? await this.options.takes() : {};
      if (!takes) return;
      for (const id of await queuedJobs(db, kind, free * 2, takes)) {
        if (this.running.size >= this.options.concurrency || this.stopped) break;
        const job = await holdJob(db, kind, id, this.id);
        if (!job) continue;
        const row = await this.options.load(id);
        if (row) this.begin(job, row);
      }
    } catch (err) {
      // The database or the engine may be restarting: try again at the next poll.
      logger.warn({ err }, `${kind.what} worker could not reach the database or the Docker engine`);
    }
  }

  /** Runs a claimed job; its slot is free when the run ends, or when the lifecycle ended it past its deadline. */
  private begin(job: RunningJob, row: J): void {
    const { kind, logger } = this.options;
    const id = job.id;
    const run = this.options.run(row, job).then(async (outcome) => {
      // A run that returned without writing its end (it was stopped) must not leave the job running.
      if (!job.done && job.stopReason === 'stop') await job.requeue();
      return outcome;
    });
    const settled = Promise.race([run, job.overdue(this.options.deadlineGraceMs ?? DEADLINE_GRACE_MS)])
      .then(async (outcome) => {
        if (outcome === 'overdue' && kind.deadline) {
          const ended = await job.finish(kind.deadline.exceeded(new Date()));
          logger.warn({ [kind.what]: id, ended }, `${kind.what} did not stop at its deadline`);
        }
        logger.info({ [kind.what]: id, outcome }, `${kind.what} finished`);
      })
      .catch((err: unknown) => logger.error({ err, [kind.what]: id }, `${kind.what} job failed`))
      .finally(() => {
        job.release();
        this.running.delete(id);
        this.nudge();
      });
    this.running.set(id, { job, settled });
  }
}
