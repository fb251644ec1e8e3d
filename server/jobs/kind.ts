/**
 * A kind of job, described once: where its rows live, what its states are
 * called, and what the lifecycle (claim, heartbeat, progress, finish,
 * re-queue, recovery, deadline, stop) does with it. Each job kind is this
 * descriptor plus its own work function; everything else is in jobs/.
 */

/** Columns of a job row, as knex writes them. */
export type JobColumns = Record<string, unknown>;

export interface JobKind {
  /** What a job is called in logs and messages: "check", "pull", "build". */
  what: string;
  table: string;
  /** The status of a job waiting for a runner. */
  queued: string;
  /** The status of a job a runner holds. */
  running: string;
  /** Set to the claim's time, if the table records when a job started. */
  startedColumn?: string;
  /**
   * A column whose jobs run one at a time: a queued job waits while another
   * with the same value runs (the builds of one image, whose layers carry
   * that image's label).
   */
  oneRunningPer?: string;
  /** Columns a job queued again gets besides its status (what a new attempt must not inherit). */
  requeued: JobColumns;
  /** What a job interrupted `maxAttempts` times becomes: an end in words. */
  interrupted: (now: Date) => JobColumns;
  /** Claims after which an interrupted job ends instead of being queued again. */
  maxAttempts: number;
  /** How often progress (and a log) is written while the job runs. */
  progressEveryMs: number;
  /**
   * How long one attempt may run: the run's signal is aborted then, and the
   * run ends itself in its own words. One that has not ended
   * `DEADLINE_GRACE_MS` later is ended by the lifecycle with `exceeded`.
   */
  deadline?: { ms: number; exceeded: (now: Date) => JobColumns };
  /**
   * When this replica stops: `wait` lets the jobs in hand end; `requeue` stops
   * them (their signal aborts) and queues them again for any replica.
   */
  onStop: 'wait' | 'requeue';
}
