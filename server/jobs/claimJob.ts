import type { Knex } from 'knex';
import type { JobKind } from './kind.js';

/**
 * Claims queued job `id` for `runner` with a compare-and-set on its status:
 * of several replicas asking at once exactly one wins, on SQLite and
 * PostgreSQL alike. True when this caller won it.
 */
export async function claimJob(db: Knex, kind: JobKind, id: number, runner: string, now: Date): Promise<boolean> {
  const changed = await db(kind.table)
    .where({ id, status: kind.queued })
    .update({
      status: kind.running,
      runner,
      heartbeat_at: now,
      attempts: db.raw('attempts + 1'),
      ...(kind.startedColumn ? { [kind.startedColumn]: now } : {}),
    });
  return changed === 1;
}
