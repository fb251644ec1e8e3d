/**
 * Jobs kept as database rows that any replica may run: a queued row is
 * claimed with a compare-and-set on its status (of several replicas exactly
 * one wins, on SQLite and PostgreSQL alike), a running row carries its
 * runner's heartbeat, and a row whose runner stopped beating is queued again
 * or, after repeated interruptions, ended.
 */
import type { Knex } from 'knex';

/** Where a kind of job lives and what its states are called. */
export interface JobTable {
  table: string;
  queued: string;
  running: string;
  /** Set to the claim's time, if the table records when a job started. */
  startedColumn?: string;
}

/** Queued jobs (those matching `where`, if given), oldest first: the ids a worker tries to claim. */
export async function queuedJobs(db: Knex, jobs: JobTable, limit: number, where: Record<string, unknown> = {}): Promise<number[]> {
  const rows = (await db(jobs.table)
    .select('id')
    .where({ ...where, status: jobs.queued })
    .orderBy('id')
    .limit(limit)) as Array<{ id: number }>;
  return rows.map((r) => Number(r.id));
}

/** How many jobs of `owner` are queued or running, on every replica. */
export async function activeJobsOf(db: Knex, jobs: JobTable, owner: string): Promise<number> {
  const [row] = (await db(jobs.table).where({ owner }).whereIn('status', [jobs.queued, jobs.running]).count({ n: '*' })) as Array<{
    n: number | string;
  }>;
  return Number(row?.n ?? 0);
}

/** Claims queued job `id` for `runner`; true when this caller won it. */
export async function claimJob(db: Knex, jobs: JobTable, id: number, runner: string, now: Date): Promise<boolean> {
  const changed = await db(jobs.table)
    .where({ id, status: jobs.queued })
    .update({
      status: jobs.running,
      runner,
      heartbeat_at: now,
      attempts: db.raw('attempts + 1'),
      ...(jobs.startedColumn ? { [jobs.startedColumn]: now } : {}),
    });
  return changed === 1;
}

/** Marks `runner`'s running jobs alive. */
export async function beatJobs(db: Knex, jobs: JobTable, ids: number[], runner: string, now: Date): Promise<void> {
  if (ids.length === 0) return;
  await db(jobs.table).whereIn('id', ids).andWhere({ runner, status: jobs.running }).update({ heartbeat_at: now });
}

/**
 * Running jobs whose runner stopped beating before `before`: queued again, or
 * given `ended` after `maxAttempts` claims.
 */
export async function recoverStaleJobs(
  db: Knex,
  jobs: JobTable,
  options: { before: Date; maxAttempts: number; ended: Record<string, unknown> },
): Promise<{ requeued: number; failed: number }> {
  const stale = db(jobs.table)
    .where({ status: jobs.running })
    .andWhere((q) => q.where('heartbeat_at', '<', options.before).orWhereNull('heartbeat_at'));
  const failed = await stale.clone().andWhere('attempts', '>=', options.maxAttempts).update(options.ended);
  const requeued = await stale
    .clone()
    .andWhere('attempts', '<', options.maxAttempts)
    .update({ status: jobs.queued, runner: null, heartbeat_at: null });
  return { requeued, failed };
}
