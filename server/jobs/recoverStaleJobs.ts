import type { Knex } from 'knex';
import type { JobKind } from './kind.js';

/**
 * Running jobs whose runner stopped beating before `before` (a killed
 * replica): queued again for a new attempt, or, after `kind.maxAttempts`
 * claims, ended with `kind.interrupted`. Never left running.
 */
export async function recoverStaleJobs(db: Knex, kind: JobKind, before: Date, now: Date): Promise<{ requeued: number; failed: number }> {
  const stale = () =>
    db(kind.table)
      .where({ status: kind.running })
      .andWhere((q) => q.where('heartbeat_at', '<', before).orWhereNull('heartbeat_at'));
  const failed = await stale()
    .andWhere('attempts', '>=', kind.maxAttempts)
    .update({ ...kind.interrupted(now), runner: null, heartbeat_at: null });
  const requeued = await stale()
    .andWhere('attempts', '<', kind.maxAttempts)
    .update({ ...kind.requeued, status: kind.queued, runner: null, heartbeat_at: null });
  return { requeued, failed };
}
