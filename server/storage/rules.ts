/**
 * Which built manifests the clean-up deletes, and why the others stay: pure
 * rules over what the database knows, the same for a dry run and a real one.
 *
 * A manifest stays while it is an image's current digest or a kept revision
 * ({@link KeptDigests}), shared, or published; while it was started within
 * its system's retention; and for the retention after it was superseded (a
 * newer build of its image was pushed), after its image was deleted, or after
 * a run first found it no longer its image's (an edit). Then it goes.
 */
import type { BuiltManifestRow } from './store.js';
import { manifestKey } from './store.js';

/** Why an image points at a digest: it runs it now, or keeps it as a revision. */
export type KeptDigests = ReadonlyMap<string, 'current' | 'revision'>;

/** What the rules know besides the manifests themselves (keys `registry/repository@digest`). */
export interface ManifestContext {
  now: Date;
  /** The retention of a system's manifests (ms); systems/storage.ts. */
  retentionMs: (system: string) => number;
  kept: KeptDigests;
  /** Digests that receivers of a share start (the shared images' current ones). */
  shared: ReadonlySet<string>;
  /** Digests an admin published (offered or withdrawn: until published again, the publication names it). */
  published: ReadonlySet<string>;
  /** The newest start of each digest (audit log, engine_images). */
  launched: ReadonlyMap<string, Date>;
}

export type KeepReason = 'published' | 'shared' | 'current' | 'revision' | 'started' | 'grace' | 'unused';
export type DeleteReason = 'superseded' | 'image_deleted' | 'unused';

/** The rules' answer for one manifest. */
export type ManifestVerdict = { keep: true; reason: KeepReason; until?: Date } | { keep: false; reason: DeleteReason; since: Date };

/** In words, for the admin page and the audit log. */
export const REASON_TEXT: Record<KeepReason | DeleteReason, string> = {
  published: 'published for everyone',
  shared: 'shared with a group (its image runs it)',
  current: "its image's current build",
  revision: 'a revision its image keeps',
  started: 'started within the retention',
  grace: 'superseded, within the retention',
  unused: 'no longer its image’s',
  superseded: 'superseded by a newer build',
  image_deleted: 'its image was deleted',
};

/**
 * When each manifest stopped being its image's newest build: the push of
 * the next newer build of the same image with other content.
 */
function supersededAt(manifests: readonly BuiltManifestRow[]): Map<number, Date> {
  const byImage = new Map<number, BuiltManifestRow[]>();
  for (const m of manifests) {
    const list = byImage.get(m.imageId);
    if (list) list.push(m);
    else byImage.set(m.imageId, [m]);
  }
  const out = new Map<number, Date>();
  for (const list of byImage.values()) {
    list.sort((a, b) => a.pushedAt.getTime() - b.pushedAt.getTime() || a.buildNumber - b.buildNumber);
    for (let i = 0; i < list.length - 1; i++) out.set(list[i]!.id, list[i + 1]!.pushedAt);
  }
  return out;
}

/**
 * The verdict for each manifest that is not deleted yet. `manifests` must
 * hold every live manifest (a newer one of the same image tells when an older
 * one was superseded, whether or not it is deleted itself).
 */
export function judgeManifests(manifests: readonly BuiltManifestRow[], context: ManifestContext): Map<number, ManifestVerdict> {
  const superseded = supersededAt(manifests);
  const now = context.now.getTime();
  const verdicts = new Map<number, ManifestVerdict>();
  for (const m of manifests) {
    if (m.status === 'deleted') continue;
    const key = manifestKey(m.repository, m.digest);
    const kept = context.kept.get(key);
    if (context.published.has(key)) {
      verdicts.set(m.id, { keep: true, reason: 'published' });
      continue;
    }
    if (kept === 'current') {
      verdicts.set(m.id, { keep: true, reason: context.shared.has(key) ? 'shared' : 'current' });
      continue;
    }
    if (kept === 'revision') {
      verdicts.set(m.id, { keep: true, reason: 'revision' });
      continue;
    }
    const retention = context.retentionMs(m.system);
    const launched = context.launched.get(key) ?? m.lastLaunchedAt ?? undefined;
    if (launched && launched.getTime() > now - retention) {
      verdicts.set(m.id, { keep: true, reason: 'started', until: new Date(launched.getTime() + retention) });
      continue;
    }
    const candidates: Array<[DeleteReason, Date]> = [];
    if (m.imageDeletedAt) candidates.push(['image_deleted', m.imageDeletedAt]);
    const next = superseded.get(m.id);
    if (next) candidates.push(['superseded', next]);
    if (m.unusedSince) candidates.push(['unused', m.unusedSince]);
    candidates.sort((a, b) => a[1].getTime() - b[1].getTime());
    const first = candidates[0];
    if (!first) {
      // Its image's newest build, yet not what the image runs (an edit): a run notes since when (unusedSince).
      verdicts.set(m.id, { keep: true, reason: 'unused', until: new Date(now + retention) });
      continue;
    }
    const [reason, since] = first;
    if (since.getTime() + retention > now) {
      verdicts.set(m.id, { keep: true, reason: 'grace', until: new Date(since.getTime() + retention) });
      continue;
    }
    verdicts.set(m.id, { keep: false, reason, since });
  }
  return verdicts;
}

/** Bytes of `blobs` lists counted once each (layers that builds share take their space once). */
export function distinctBytes(blobLists: Iterable<ReadonlyArray<{ digest: string; size: number }> | null>): number {
  const seen = new Map<string, number>();
  for (const blobs of blobLists) for (const b of blobs ?? []) seen.set(b.digest, b.size);
  let sum = 0;
  for (const size of seen.values()) sum += size;
  return sum;
}
