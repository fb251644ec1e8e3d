/**
 * Which data volumes nobody owns, and which of them go: pure rules, the same
 * for a dry run and a real one. A volume the service made is nobody's when
 * the hub no longer has its user, its system no longer exists, or its user
 * asked for their data to go; after its system's grace it is removed, unless
 * an admin keeps it or a container uses it.
 */
import { dataVolumeName, legacyDataVolumeName, VOLUME_OWNER_LABEL, VOLUME_SYSTEM_LABEL, VOLUME_USER_LABEL } from '../launch/volumes.js';
import type { OrphanReason } from './store.js';

/** Whose data a volume holds, from its labels: undefined for a volume the service did not make under these names. */
export function volumeOwner(name: string, labels: Record<string, string>): { user: string; system: string } | undefined {
  const system = labels[VOLUME_SYSTEM_LABEL];
  const user = labels[VOLUME_USER_LABEL] ?? labels[VOLUME_OWNER_LABEL];
  if (!system || !user) return undefined;
  // Labels alone could be anyone's: the name must be the one the service gives this user's data.
  if (name !== dataVolumeName(user, system) && name !== legacyDataVolumeName(user, system)) return undefined;
  return { user, system };
}

/** What the rules know of the world outside the volume. */
export interface VolumeContext {
  now: Date;
  /** The hub's users; undefined when the hub could not be asked (then nobody is taken to be removed). */
  hubUsers: ReadonlySet<string> | undefined;
  systems: ReadonlySet<string>;
  /** Users who asked for their data to go, and when. */
  requests: ReadonlyMap<string, Date>;
  /** When each user last started a server on each system (key `user\u0000system`): a start after the request withdraws it. */
  launches: ReadonlyMap<string, Date>;
  graceMs: (system: string) => number;
}

/** Why nobody owns a volume now, and since when; undefined while someone does. */
export function orphanOf(
  volume: { user: string; system: string; orphanedAt: Date | null; orphanReason: OrphanReason | null },
  context: VolumeContext,
): { reason: OrphanReason; since: Date } | undefined {
  const requested = context.requests.get(volume.user);
  const started = context.launches.get(`${volume.user}\u0000${volume.system}`);
  if (requested && !(started && started.getTime() > requested.getTime())) return { reason: 'user_asked', since: requested };
  const keepSince = (reason: OrphanReason) => (volume.orphanReason === reason && volume.orphanedAt ? volume.orphanedAt : context.now);
  if (!context.systems.has(volume.system)) return { reason: 'system_removed', since: keepSince('system_removed') };
  if (context.hubUsers === undefined) {
    // The hub did not answer: what was known stays as it was.
    return volume.orphanReason === 'user_removed' && volume.orphanedAt ? { reason: 'user_removed', since: volume.orphanedAt } : undefined;
  }
  if (!context.hubUsers.has(volume.user)) return { reason: 'user_removed', since: keepSince('user_removed') };
  return undefined;
}

export type VolumeVerdict =
  | { remove: true; reason: OrphanReason; since: Date }
  | { remove: false; reason: 'owned' }
  | { remove: false; reason: 'kept' | 'in_use' | 'grace'; orphan: OrphanReason; since: Date; until: Date };

/** Whether a volume goes now. */
export function judgeVolume(
  volume: {
    user: string;
    system: string;
    orphanedAt: Date | null;
    orphanReason: OrphanReason | null;
    keptBy: string | null;
    inUse: boolean;
  },
  context: VolumeContext,
): VolumeVerdict {
  const orphan = orphanOf(volume, context);
  if (!orphan) return { remove: false, reason: 'owned' };
  const until = new Date(orphan.since.getTime() + context.graceMs(volume.system));
  const base = { orphan: orphan.reason, since: orphan.since, until };
  if (volume.keptBy) return { remove: false, reason: 'kept', ...base };
  if (until.getTime() > context.now.getTime()) return { remove: false, reason: 'grace', ...base };
  if (volume.inUse) return { remove: false, reason: 'in_use', ...base };
  return { remove: true, reason: orphan.reason, since: orphan.since };
}

export const ORPHAN_TEXT: Record<OrphanReason, string> = {
  user_removed: 'the hub no longer has this user',
  system_removed: 'its system no longer exists',
  user_asked: 'its user asked for their data to go',
};
