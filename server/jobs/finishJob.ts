import type { Knex } from 'knex';
import { heldRow, type JobHandle } from './held.js';
import type { JobColumns, JobKind } from './kind.js';

/**
 * Ends a job with its result (`columns` carry the final status: passed,
 * failed, ready, …). The row keeps its runner's name (which replica ran
 * it); its status says nobody holds it any more. False when the runner no
 * longer holds it: another replica recovered it, or the deadline ended it;
 * then that newer state stands.
 */
export async function finishJob(db: Knex, kind: JobKind, job: JobHandle, columns: JobColumns): Promise<boolean> {
  if (columns.status === kind.running || columns.status === kind.queued) {
    throw new Error(`finishJob needs an end status for a ${kind.what}, not ${String(columns.status)}`);
  }
  return (await heldRow(db, kind, job).update(columns)) === 1;
}
