/**
 * The one way a runner writes to a job it holds. Every write is guarded by
 * the runner and the running status, as graphile-worker guards by
 * `locked_by`: once another replica recovered and claimed the job, or it
 * ended, a late write of this runner changes nothing (and says so).
 */
import type { Knex } from 'knex';
import type { JobKind } from './kind.js';

/** A job as its runner holds it: the row's id and the runner's name. */
export interface JobHandle {
  id: number;
  runner: string;
}

/** The rows of `kind` that `job`'s runner still holds. */
export function heldRow(db: Knex, kind: JobKind, job: JobHandle): Knex.QueryBuilder {
  return db(kind.table).where({ id: job.id, runner: job.runner, status: kind.running });
}
