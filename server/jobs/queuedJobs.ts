import type { Knex } from 'knex';
import type { JobKind } from './kind.js';
import { whereNoneOfItsValueRuns } from './waitingTurn.js';

/**
 * Queued jobs (those matching `where`, if given), oldest first: the ids a
 * worker tries to claim; with `kind.oneRunningPer`, none whose value runs.
 */
export async function queuedJobs(db: Knex, kind: JobKind, limit: number, where: Record<string, unknown> = {}): Promise<number[]> {
  const query = whereNoneOfItsValueRuns(
    db,
    kind,
    db(kind.table)
      .select('id')
      .where({ ...where, status: kind.queued }),
  );
  const rows = (await query.orderBy('id').limit(limit)) as Array<{ id: number }>;
  return rows.map((r) => Number(r.id));
}

/** How many jobs of `owner` are queued or running, on every replica. */
export async function activeJobsOf(db: Knex, kind: JobKind, owner: string): Promise<number> {
  const [row] = (await db(kind.table).where({ owner }).whereIn('status', [kind.queued, kind.running]).count({ n: '*' })) as Array<{
    n: number | string;
  }>;
  return Number(row?.n ?? 0);
}
