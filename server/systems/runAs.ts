/**
 * Who a notebook server runs as: always the system's uid and gid, never the
 * image's own USER (an image that ends with `USER root` must not get root, and
 * one that names another person's uid must not get their files). A system
 * with a uid range keeps the image's own user when it lies inside the range.
 * Pure.
 */
import type { ImagePolicy } from './schema.js';

/** The uid and gid a server runs as. */
export interface RunAs {
  uid: number;
  gid: number;
}

/** What of an image decides its own user: the config's USER and /etc/passwd. */
export interface ImageUser {
  configUser: string;
  users: ReadonlyArray<{ name: string; uid: number }>;
}

/**
 * The uid the image itself would run as, as Docker resolves USER: a number, a
 * name in /etc/passwd, or root when unset; undefined for an unknown name.
 */
export function imageUid(image: ImageUser): number | undefined {
  const user = image.configUser.split(':')[0] ?? '';
  if (user === '') return 0;
  if (/^\d+$/.test(user)) return Number(user);
  return image.users.find((u) => u.name === user)?.uid;
}

/** The uid and gid servers of this image run as on a system with `policy`. */
export function runAsFor(policy: Pick<ImagePolicy, 'uid' | 'uidMax' | 'gid'>, image: ImageUser | undefined): RunAs {
  const own = image ? imageUid(image) : undefined;
  const max = policy.uidMax ?? policy.uid;
  const uid = own !== undefined && own >= policy.uid && own <= max ? own : policy.uid;
  return { uid, gid: policy.gid };
}
