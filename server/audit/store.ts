/** The audit trail: who did what to which image or system, when. Never a secret. */
import type { Knex } from 'knex';

export interface AuditEntry {
  actor: string;
  actorKind: 'user' | 'service';
  action: string;
  targetType: string;
  targetId: string;
  /** Plain facts only; never a secret. */
  details: Record<string, unknown>;
}

/** Appends one entry, in the caller's transaction if it passes one. */
export async function writeAudit(db: Knex | Knex.Transaction, entry: AuditEntry, now: Date): Promise<void> {
  await db('audit').insert({
    at: now,
    actor: entry.actor,
    actor_kind: entry.actorKind,
    action: entry.action,
    target_type: entry.targetType,
    target_id: entry.targetId,
    details: JSON.stringify(entry.details),
  });
}
