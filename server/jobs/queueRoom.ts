import type { Knex } from 'knex';
import { tooManyRequests } from '../errors.js';
import type { JobKind } from './kind.js';
import { activeJobsOf } from './queuedJobs.js';

/** Refuses (429, Retry-After) a new job of `owner` who has `max` of this kind waiting or running: one user cannot fill the queue for everyone. */
export async function assertQueueRoom(db: Knex, kind: JobKind, owner: string, max: number, retryAfterSeconds: number): Promise<void> {
  const active = await activeJobsOf(db, kind, owner);
  if (active >= max) {
    throw tooManyRequests(
      `${owner} has ${active} ${kind.what}s waiting or running already (at most ${max}). Start another one when one of them is done.`,
      retryAfterSeconds,
    );
  }
}
