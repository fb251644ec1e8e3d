import type { Knex } from 'knex';
import { heldRow, type JobHandle } from './held.js';
import type { JobColumns, JobKind } from './kind.js';

/**
 * Gives a job back (this replica is stopping): queued again for any replica,
 * with the kind's reset columns and `columns` (a log line saying why).
 * False when the runner no longer holds it.
 */
export async function requeueJob(db: Knex, kind: JobKind, job: JobHandle, columns: JobColumns = {}): Promise<boolean> {
  const changed = await heldRow(db, kind, job).update({
    ...kind.requeued,
    ...columns,
    status: kind.queued,
    runner: null,
    heartbeat_at: null,
  });
  return changed === 1;
}
