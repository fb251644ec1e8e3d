import type { Knex } from 'knex';
import type { JobKind } from './kind.js';

/** Marks the jobs `runner` still holds alive; a job another replica took since is left alone. */
export async function beatJobs(db: Knex, kind: JobKind, ids: number[], runner: string, now: Date): Promise<void> {
  if (ids.length === 0) return;
  await db(kind.table).whereIn('id', ids).andWhere({ runner, status: kind.running }).update({ heartbeat_at: now });
}
