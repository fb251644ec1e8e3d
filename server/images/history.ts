/**
 * An image's history — created, modified (which fields), built, checked,
 * shared, published, a build deleted from the registry by the clean-up — read from the audit log, where every service writes
 * these facts once (audit/store.ts, target image/<id>). Nothing here is a
 * second record of them: this only reads and words them. Another user's
 * image is a 404, as on every image route; the launcher may read it.
 */
import type { StoredAuditEntry } from '../audit/store.js';
import { notFound } from '../errors.js';
import type { AccessRules } from '../hub/access.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageStore } from './store.js';

/** What happened, as the history names it, by the audit action it is read from. */
const EVENTS = {
  'image.create': 'created',
  'image.update': 'modified',
  'image.build': 'built',
  'image.rebuild': 'built',
  'image.check': 'checked',
  'image.share': 'shared',
  'image.publish': 'published',
  'image.unpublish': 'unpublished',
  'image.accept': 'accepted',
  'image.rollback': 'rolled back',
  'image.keep': 'kept',
  'storage.manifest.delete': 'deleted from the registry',
} as const;

/** Launches are left out: every server start is one, and they say who used it, not what became of it. */
const ACTIONS = Object.keys(EVENTS);

export type HistoryEvent = (typeof EVENTS)[keyof typeof EVENTS];

/** Entries shown at most: the newest, which is what a researcher looks for. */
export const HISTORY_LIMIT = 500;

/** One line of an image's history: who did what, when, and the facts that say which. */
export interface HistoryEntry {
  at: Date;
  event: HistoryEvent;
  /** A hub user or service, or the service itself (the check after a build). */
  by: string;
  byKind: 'user' | 'service';
  /** modified: the fields changed (as the form and API name them). */
  changed?: string[];
  /** built, deleted from the registry: the build's number. */
  build?: number;
  /** checked: the check's id. */
  check?: number;
  /** shared: the groups it is shared with after this (none: shared with nobody). */
  groups?: string[];
  /** published: the digest published. */
  digest?: string;
  /** deleted from the registry: why the clean-up let it go (storage/rules.ts names the reasons). */
  reason?: string;
}

const strings = (value: unknown): string[] | undefined =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined;
const positive = (value: unknown): number | undefined => (typeof value === 'number' && Number.isInteger(value) ? value : undefined);

/** A stored entry as a history line: only the plain facts each kind names (details hold never a secret, but more than a line needs). */
export function historyEntry(entry: StoredAuditEntry): HistoryEntry {
  const event = EVENTS[entry.action as keyof typeof EVENTS];
  const d = entry.details;
  const line: HistoryEntry = { at: entry.at, event, by: entry.actor, byKind: entry.actorKind };
  if (event === 'modified') line.changed = strings(d.changed) ?? [];
  if (event === 'built') line.build = positive(d.number ?? d.build);
  if (event === 'checked') line.check = positive(d.check);
  if (event === 'shared') line.groups = strings(d.groups) ?? [];
  if (event === 'published' && typeof d.digest === 'string') line.digest = d.digest;
  if (event === 'deleted from the registry') {
    line.build = positive(d.build);
    if (typeof d.reason === 'string') line.reason = d.reason;
  }
  return line;
}

export class ImageHistory {
  constructor(private readonly deps: { access: AccessRules; store: Pick<ImageStore, 'get' | 'auditOf'> }) {}

  /** `owner`'s image `id`'s history, newest first; 404 when there is no such image of theirs. */
  async of(actor: HubIdentity, owner: string, id: number): Promise<HistoryEntry[]> {
    this.deps.access.readImagesOf(actor, owner);
    // Image ids are never reused (autoincrement, serial): the entries under this id are this image's.
    if (!(await this.deps.store.get(owner, id))) throw notFound('Image');
    return (await this.deps.store.auditOf(id, ACTIONS, HISTORY_LIMIT)).map(historyEntry);
  }
}
