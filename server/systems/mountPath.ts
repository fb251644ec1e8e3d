/**
 * Mount paths for a user's persistent data, checked before anything is saved:
 * absolute, normalised, nothing that would hide the image's own system.
 * Pure.
 */
import path from 'node:path/posix';

/** Mounting over these (or under them) would break or subvert the image. */
const SYSTEM_PATHS = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/sys',
  '/tmp',
  '/usr',
  '/var',
  '/opt/conda',
] as const;

export const MOUNT_PATH_MAX_LENGTH = 1024;

/** The outcome: the normalised path, or why it is refused. */
export type MountPathResult = { ok: true; path: string } | { ok: false; message: string };

function isUnder(candidate: string, parent: string): boolean {
  return candidate === parent || candidate.startsWith(parent === '/' ? '/' : `${parent}/`);
}

/**
 * Checks a mount path against the rules and the system's allowed prefixes.
 * `allowedPrefixes` empty means any non-system path.
 */
export function checkMountPath(input: string, allowedPrefixes: readonly string[]): MountPathResult {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(input))
    return { ok: false, message: 'The mount path must not contain control characters (such as NUL or a line break)' };
  if (input.length > MOUNT_PATH_MAX_LENGTH) return { ok: false, message: `The mount path has at most ${MOUNT_PATH_MAX_LENGTH} characters` };
  if (!input.startsWith('/')) return { ok: false, message: 'The mount path must be absolute, starting with "/", e.g. /home/jovyan/work' };
  if (input.split('/').includes('..')) return { ok: false, message: 'The mount path must not contain ".." parts' };
  if (/[:,\\]/.test(input))
    return { ok: false, message: 'The mount path must not contain ":", "," or "\\" (they separate volume options)' };
  // DockerSpawner and KubeSpawner fill {username} and the like into volume paths with str.format.
  if (/[{}]/.test(input))
    return { ok: false, message: 'The mount path must not contain "{" or "}" (the spawner fills in names written between them)' };
  const normalized = path.normalize(input).replace(/\/+$/, '') || '/';
  if (normalized === '/') return { ok: false, message: 'The mount path cannot be "/": that would hide the whole image' };
  const system = SYSTEM_PATHS.find((p) => isUnder(normalized, p));
  if (system) {
    return {
      ok: false,
      message: `The mount path cannot be in ${system}: that is part of the image's system. Use a path such as /home/jovyan/work`,
    };
  }
  if (allowedPrefixes.length > 0 && !allowedPrefixes.some((prefix) => isUnder(normalized, prefix))) {
    return { ok: false, message: `The mount path must be under ${allowedPrefixes.join(', ')} on this system` };
  }
  return { ok: true, path: normalized };
}
