import type { Knex } from 'knex';
import { heldRow, type JobHandle } from './held.js';
import type { JobColumns, JobKind } from './kind.js';

/** Writes a running job's progress (phase, step, log); false when the runner no longer holds it. */
export async function writeProgress(db: Knex, kind: JobKind, job: JobHandle, columns: JobColumns): Promise<boolean> {
  return (await heldRow(db, kind, job).update(columns)) === 1;
}
