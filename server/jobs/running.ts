/**
 * A job in the hands of this replica's worker, as its work function sees it:
 * the signal that says stop (its deadline, counted from the claim, passed;
 * or the replica is stopping a kind that is queued again), and the only writes a run makes to
 * its row, each guarded by the runner and the running status (jobs/held.ts).
 * Progress is written at most every `kind.progressEveryMs`, the newest
 * state only; after the end, nothing more is written.
 */
import type { Knex } from 'knex';
import { claimJob } from './claimJob.js';
import { finishJob } from './finishJob.js';
import type { JobHandle } from './held.js';
import type { JobColumns, JobKind } from './kind.js';
import { requeueJob } from './requeueJob.js';
import { ThrottledWriter } from './throttle.js';
import { writeProgress } from './writeProgress.js';

/** Why a run's signal was aborted. */
export type StopReason = 'deadline' | 'stop';

export class RunningJob implements JobHandle {
  private readonly controller = new AbortController();
  private readonly writer: ThrottledWriter<JobColumns>;
  private readonly deadline: NodeJS.Timeout | undefined;
  private ended = false;

  /** Holds the job from now: its deadline, if its kind has one, runs from here. */
  constructor(
    private readonly db: Knex,
    readonly kind: JobKind,
    readonly id: number,
    readonly runner: string,
  ) {
    this.writer = new ThrottledWriter((columns) => writeProgress(db, kind, this, columns).then(() => undefined), kind.progressEveryMs);
    if (kind.deadline) {
      this.deadline = setTimeout(() => this.abort('deadline'), kind.deadline.ms);
      this.deadline.unref();
    }
  }

  /** Aborted at the deadline, or when the replica stops a job of a kind that is queued again. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Why the signal was aborted; undefined while it was not. */
  get stopReason(): StopReason | undefined {
    return this.controller.signal.aborted ? (this.controller.signal.reason as StopReason) : undefined;
  }

  /** Whether the run has written its end (or given the job back). */
  get done(): boolean {
    return this.ended;
  }

  /** Aborts the run's signal (the worker calls this); the first reason stands. */
  abort(reason: StopReason): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  /** Takes `snapshot` as the newest progress; it is read and written when a write is due. */
  progress(snapshot: () => JobColumns): void {
    if (!this.ended) this.writer.set(snapshot);
  }

  /** Writes pending progress now. */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /** Resolves `graceMs` after the deadline passed (never, for a kind without one). */
  overdue(graceMs: number): Promise<'overdue'> {
    return new Promise((resolve) => {
      const after = () => {
        if (this.stopReason === 'deadline') setTimeout(() => resolve('overdue'), graceMs).unref();
      };
      if (this.signal.aborted) after();
      else this.signal.addEventListener('abort', after, { once: true });
    });
  }

  /** Lets go of the timers (the run has ended, one way or another). */
  release(): void {
    clearTimeout(this.deadline);
  }

  /** Writes the end (`columns` carry the end status); false when this runner no longer held the job. */
  async finish(columns: JobColumns): Promise<boolean> {
    if (this.ended) return false;
    this.release();
    await this.writer.flush();
    this.ended = true;
    return finishJob(this.db, this.kind, this, columns);
  }

  /** Gives the job back to the queue (this replica stops); false when this runner no longer held it. */
  async requeue(columns: JobColumns = {}): Promise<boolean> {
    if (this.ended) return false;
    this.release();
    await this.writer.flush();
    this.ended = true;
    return requeueJob(this.db, this.kind, this, columns);
  }
}

/**
 * Claims queued job `id` for `runner` and holds it: what a worker does before
 * it runs a job, and what a test or benchmark does to run one by hand.
 * Undefined when another runner won it (or it was not queued).
 */
export async function holdJob(db: Knex, kind: JobKind, id: number, runner: string, now = new Date()): Promise<RunningJob | undefined> {
  return (await claimJob(db, kind, id, runner, now)) ? new RunningJob(db, kind, id, runner) : undefined;
}
