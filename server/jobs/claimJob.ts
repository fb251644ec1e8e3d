import type { Knex } from 'knex';
import type { JobKind } from './kind.js';
import { whereNoneOfItsValueRuns } from './waitingTurn.js';

/**
 * Claims queued job `id` for `runner` with a compare-and-set on its status:
 * of several replicas asking at once exactly one wins, on SQLite and
 * PostgreSQL alike. With `kind.oneRunningPer`, not while another job with
 * the same value of that column runs. True when this caller won it.
 */
export async function claimJob(db: Knex, kind: JobKind, id: number, runner: string, now: Date): Promise<boolean> {
  const claim = (trx: Knex | Knex.Transaction) =>
    whereNoneOfItsValueRuns(
      trx,
      kind,
      trx(kind.table)
        .where({ id, status: kind.queued })
        .update({
          status: kind.running,
          runner,
          heartbeat_at: now,
          attempts: trx.raw('attempts + 1'),
          ...(kind.startedColumn ? { [kind.startedColumn]: now } : {}),
        }),
    );
  const per = kind.oneRunningPer;
  if (!per) return (await claim(db)) === 1;
  return db.transaction(async (trx) => {
    const row = (await trx(kind.table).select(per).where({ id }).first()) as Record<string, unknown> | undefined;
    if (!row) return false;
    await takeTurn(trx, kind, row[per]);
    return (await claim(trx)) === 1;
  });
}

/**
 * Makes the claims of jobs with one `kind.oneRunningPer` value take turns,
 * until `trx` ends. One statement is atomic on SQLite (one writer at a
 * time); PostgreSQL reads the claim's NOT EXISTS in its own snapshot, so two
 * claims at once would both see nothing running without a lock named by the
 * table, the column and the value.
 */
export async function takeTurn(trx: Knex.Transaction, kind: JobKind, value: unknown): Promise<void> {
  if (trx.client.config.client !== 'pg') return;
  await trx.raw('select pg_advisory_xact_lock(hashtext(?))', [`${kind.table}.${kind.oneRunningPer ?? ''}=${String(value)}`]);
}
