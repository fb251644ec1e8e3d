/** The audit trail: who did what to which image or system, when. Never a secret. */
import type { Knex } from 'knex';
import { fromJson, toDate } from '../store/rows.js';

export interface AuditEntry {
  actor: string;
  actorKind: 'user' | 'service';
  action: string;
  targetType: string;
  targetId: string;
  /** Plain facts only; never a secret. */
  details: Record<string, unknown>;
}

/** Who did it: a hub user or a hub service (a token's owner), or the service itself. */
export interface AuditActor {
  name: string;
  kind: 'user' | 'service';
}

/** The service's own doing, for what no caller asked for directly (the check that follows a build). */
export const SERVICE_ITSELF: AuditActor = { name: 'custom-images', kind: 'service' };

/** What an entry is about. An image's history is every entry with its target (see {@link imageTarget}). */
export interface AuditTarget {
  /** `user` and `data_volume`: the clean-up's and a user's data removal (storage/). */
  type: 'image' | 'system' | 'registry_credential' | 'user' | 'data_volume';
  id: string;
}

/** An image as a target: one form everywhere, so that its history is one query. */
export function imageTarget(id: number): AuditTarget {
  return { type: 'image', id: String(id) };
}

/**
 * What `actor` did to `target`: the one way an entry is made. Actions are
 * `<target type>.<verb>`; an image's are create, update (with the names of
 * the changed fields in `changed`), delete, build, rebuild, check, share,
 * publish, unpublish and launch. `details` are plain facts, never a secret.
 */
export function auditEntry(actor: AuditActor, action: string, target: AuditTarget, details: Record<string, unknown>): AuditEntry {
  return { actor: actor.name, actorKind: actor.kind, action, targetType: target.type, targetId: target.id, details };
}

/**
 * The names of the fields of `after` whose values differ from `before`'s
 * (compared as JSON): what a modification changed, for its entry's `changed`.
 */
export function changedFields(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  return Object.keys(after).filter((field) => JSON.stringify(before[field] ?? null) !== JSON.stringify(after[field] ?? null));
}

function auditRow(entry: AuditEntry, now: Date) {
  return {
    at: now,
    actor: entry.actor,
    actor_kind: entry.actorKind,
    action: entry.action,
    target_type: entry.targetType,
    target_id: entry.targetId,
    details: JSON.stringify(entry.details),
  };
}

/** Appends entries: the one place that writes the audit table (a store's transaction, or {@link AuditLog}'s groups). */
export async function writeAudit(db: Knex | Knex.Transaction, entries: ReadonlyArray<{ entry: AuditEntry; at: Date }>): Promise<void> {
  await db('audit').insert(entries.map(({ entry, at }) => auditRow(entry, at)));
}

/** Rows per INSERT: far below SQLite's and PostgreSQL's limits on bound values. */
const MAX_BATCH = 200;

/**
 * Audit entries written outside a transaction (launches), committed in
 * groups: entries that arrive while one INSERT runs go into the next one.
 * Each caller still waits until its own entry is stored, so nothing is
 * answered before it is on record, but a burst of launches costs a few
 * statements instead of one each.
 */
export class AuditLog {
  private queue: Array<{ entry: AuditEntry; at: Date; resolve: () => void; reject: (err: unknown) => void }> = [];
  private flushing: Promise<void> | undefined;

  constructor(private readonly db: Knex) {}

  append(entry: AuditEntry, now: Date): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, at: now, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  /** Resolves once every entry appended so far is stored (or has failed to its caller). */
  async drain(): Promise<void> {
    await this.flushing;
  }

  private async flush(): Promise<void> {
    // Let the requests handled in this turn of the event loop join the first group.
    await new Promise((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      try {
        await writeAudit(this.db, batch);
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    }
    this.flushing = undefined;
  }
}

/** An entry as it was stored, with its time. */
export interface StoredAuditEntry extends AuditEntry {
  id: number;
  at: Date;
}

/**
 * The entries about `target` whose action is one of `actions`, newest first
 * (by id: entries of the same moment keep the order they were written in),
 * at most `limit`. What an image's history page and API read.
 */
export async function auditOf(
  db: Knex | Knex.Transaction,
  target: AuditTarget,
  actions: readonly string[],
  limit: number,
): Promise<StoredAuditEntry[]> {
  const rows = (await db('audit')
    .where({ target_type: target.type, target_id: target.id })
    .whereIn('action', actions)
    .orderBy('id', 'desc')
    .limit(limit)) as Array<Record<string, unknown>>;
  return rows.map((r) => ({
    id: Number(r.id),
    at: toDate(r.at),
    actor: String(r.actor),
    actorKind: r.actor_kind === 'service' ? 'service' : 'user',
    action: String(r.action),
    targetType: String(r.target_type),
    targetId: String(r.target_id),
    details: fromJson<Record<string, unknown>>(r.details),
  }));
}
