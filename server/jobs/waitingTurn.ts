import type { Knex } from 'knex';
import type { JobKind } from './kind.js';

/**
 * Keeps `query` on `kind.table` to jobs that may run now: with
 * `kind.oneRunningPer`, none while another job with the same value of that
 * column runs (the builds of one image). What a claim and the worker's list
 * of queued jobs both hold to.
 */
export function whereNoneOfItsValueRuns<Q extends Knex.QueryBuilder>(db: Knex | Knex.Transaction, kind: JobKind, query: Q): Q {
  const per = kind.oneRunningPer;
  if (!per) return query;
  return query.whereNotExists(
    db(`${kind.table} as other`)
      .select('other.id')
      .where('other.status', kind.running)
      .andWhere(`other.${per}`, db.ref(`${kind.table}.${per}`)),
  ) as Q;
}
