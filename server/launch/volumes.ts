/**
 * The name of a user's data volume on a system: a Docker volume the service
 * prepares (or, with KubeSpawner and no claim of its own, a claim name).
 * One-to-one in (user, system), and never a name a spawner makes for a hub
 * user: DockerSpawner's `{username}` is escaped to lower-case letters, digits
 * and `-xx` escapes (its legacy escape to letters, digits, `-` and `_xx`),
 * KubeSpawner's alike, so none has a `.`, and these names all do.
 */
import { createHash } from 'node:crypto';

/** Marks a volume made for a server's data: the hub user whose data it holds. */
export const VOLUME_USER_LABEL = 'custom-images.user';
/** The image owner and system of the launch that made a volume (before {@link VOLUME_USER_LABEL} existed, all there was). */
export const VOLUME_OWNER_LABEL = 'custom-images.owner';
export const VOLUME_SYSTEM_LABEL = 'custom-images.system';

/** A readable part of a name: lower case, other characters as `-`, at most 40, never empty. */
function readable(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+/, '')
      .slice(0, 40)
      .replace(/-+$/, '') || 'x'
  );
}

/**
 * `jupyterhub-user-<user>.<system>.<sha256>`: readable parts for operators,
 * then the full SHA-256 of the exact pair, which alone tells volumes apart.
 * Valid as a Docker volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`) and as a
 * Kubernetes object name (a DNS-1123 subdomain, at most 253 characters; here at most 162).
 */
export function dataVolumeName(user: string, system: string): string {
  const hash = createHash('sha256')
    .update(JSON.stringify([user, system]))
    .digest('hex');
  return `jupyterhub-user-${readable(user)}.${readable(system)}.${hash}`;
}

/**
 * The name volumes had before: the names cut at 40 characters and 32 bits of
 * a hash, so a crafted hub name could share it (and a hub user called
 * `ada-dock-1a2b3c4d` got it from DockerSpawner). Only to find existing data.
 */
export function legacyDataVolumeName(user: string, system: string): string {
  const safe = (s: string) =>
    s
      .toLowerCase()
      .replace(/[^a-z0-9_.-]+/g, '-')
      .replace(/^[-.]+/, '')
      .slice(0, 40) || 'x';
  const tag = createHash('sha256').update(`${user}\u0000${system}`).digest('hex').slice(0, 8);
  return `jupyterhub-user-${safe(user)}-${safe(system)}-${tag}`;
}

/**
 * Whether a volume under the legacy name is `user`'s data on `system`: made
 * by the service for a launch of `user`'s own image there. A spawner's
 * volume has no such labels; a volume made for another hub name that shares
 * the legacy name names that user (nobody can label a volume for someone else).
 */
export function isLegacyVolumeOf(labels: Record<string, string> | undefined, user: string, system: string): boolean {
  if (!labels || labels[VOLUME_SYSTEM_LABEL] !== system) return false;
  return (labels[VOLUME_USER_LABEL] ?? labels[VOLUME_OWNER_LABEL]) === user;
}

/**
 * The volume to mount for `user` on `system`: their volume under the legacy
 * name when they have one (their data stays theirs), else {@link dataVolumeName}.
 */
export async function dataVolume(
  engine: { volumeLabels(name: string): Promise<Record<string, string> | undefined> },
  user: string,
  system: string,
): Promise<string> {
  const legacy = legacyDataVolumeName(user, system);
  return isLegacyVolumeOf(await engine.volumeLabels(legacy), user, system) ? legacy : dataVolumeName(user, system);
}
