/**
 * Where built images live, and whose they are: a system pushes what a user
 * builds to `<pushTo>/<userPathComponent(user)>/<name>:<number>`, and the
 * site's credential for that path reads every user's builds. So a reference
 * under a push path is a user's own only when it is under that user's
 * component. Pure: the push paths and who pushed where are the caller's.
 */
import { createHash } from 'node:crypto';
import { parseReference, ReferenceError, type ImageReference } from '../registry/reference.js';

/** A hub name that is a path component as it is: lower-case letters and digits, single `-` inside. */
const PLAIN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/**
 * The longest path component a user gets: with the longest build name (64)
 * and two slashes, a push path of up to {@link PUSH_PATH_MAX_LENGTH}
 * characters keeps the whole name within distribution's 255.
 */
export const USER_COMPONENT_MAX_LENGTH = 100;
/** The longest push path an admin may set (see {@link USER_COMPONENT_MAX_LENGTH}). */
export const PUSH_PATH_MAX_LENGTH = 255 - 64 - 2 - USER_COMPONENT_MAX_LENGTH;
/** How much of a name is kept, in front of its encoding, so that people recognise it. */
const READABLE_LENGTH = 20;

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32 in lower case without padding: only a–z and 2–7, valid in a path component. */
function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(buffer << (5 - bits)) & 31];
  return out;
}

function fromBase32(text: string): Buffer | undefined {
  const bytes: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const char of text) {
    const value = BASE32.indexOf(char);
    if (value < 0) return undefined;
    buffer = (buffer << 5) | value;
    bits += 5;
    if (bits >= 8) {
      bytes.push((buffer >>> (bits - 8)) & 255);
      bits -= 8;
    }
    buffer &= (1 << bits) - 1;
  }
  return Buffer.from(bytes);
}

/**
 * A hub user name as a repository path component, one-to-one: a plain name
 * (`ada`, `ada-lovelace`) stays as it is; any other name becomes a readable
 * part, `__` and the base32 of its exact UTF-8 (`alice.smith` ->
 * `alice-smith__mfwgsy3ffzzw22luna`), or, when that would be longer than
 * {@link USER_COMPONENT_MAX_LENGTH}, a readable part, `.` and the base32 of
 * its SHA-256. A plain name has neither `_` nor `.`, and an encoded one no
 * `.`: no two names share a component (up to SHA-256 for the longest).
 * Always valid in distribution's grammar: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
 */
export function userPathComponent(name: string): string {
  if (PLAIN.test(name) && name.length <= USER_COMPONENT_MAX_LENGTH) return name;
  const readable =
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+/, '')
      .slice(0, READABLE_LENGTH)
      .replace(/-+$/, '') || 'u';
  const encoded = `${readable}__${base32(Buffer.from(name, 'utf8'))}`;
  if (encoded.length <= USER_COMPONENT_MAX_LENGTH) return encoded;
  return `${readable}.${base32(createHash('sha256').update(name, 'utf8').digest())}`;
}

/** The hub name a component was made from, where it says (plain and encoded ones); undefined for hashed or foreign ones. */
export function userOfPathComponent(component: string): string | undefined {
  if (PLAIN.test(component)) return component;
  const at = component.lastIndexOf('__');
  if (at < 0 || component.includes('.')) return undefined;
  const bytes = fromBase32(component.slice(at + 2));
  const name = bytes?.toString('utf8');
  return name !== undefined && userPathComponent(name) === component ? name : undefined;
}

/**
 * The component a build pushed to before components were one-to-one (lower
 * case, other characters as `-`, six hex digits of a hash when that changed
 * the name): `alice.smith` and the hub user `alice-smith-634258` shared it.
 * Only to recognise existing images; nothing is pushed there any more.
 */
export function legacyUserPathComponent(name: string): string {
  const plain = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (plain === name && plain !== '') return plain;
  return `${plain || 'user'}-${createHash('sha256').update(name).digest('hex').slice(0, 6)}`;
}

/** A system's push path, parsed: its registry and the repository prefix under it. */
export interface PushPath {
  /** As the admin wrote it, for messages. */
  path: string;
  registry: string;
  /** The repository part, without a trailing slash. */
  prefix: string;
}

/** The push path `pushTo` as a registry and repository prefix; undefined for a blank or invalid one. */
export function parsePushPath(pushTo: string): PushPath | undefined {
  if (pushTo === '') return undefined;
  try {
    const probe = parseReference(`${pushTo}/u/i`);
    return { path: pushTo, registry: probe.registry, prefix: probe.repository.slice(0, -'/u/i'.length) };
  } catch (err) {
    if (err instanceof ReferenceError) return undefined;
    throw err;
  }
}

/** Where a reference lies under a push path: the path (the longest, if several) and the component after it. */
export interface UnderPushPath {
  pushPath: PushPath;
  /** The first component after the push path; undefined when the repository is the path itself. */
  component: string | undefined;
  /** Whether a name follows the component (`<pushTo>/<user>/<name>`), as in every pushed build. */
  named: boolean;
  /** `registry/repository`, what builds' targets are compared with. */
  repository: string;
}

/**
 * The push path `reference` lies under, or undefined. The longest one
 * decides, as the most specific credential pattern does: with
 * `reg/ci` and `reg/ci/team` both push paths, `reg/ci/team/ada/env` is Ada's.
 */
export function underPushPath(reference: ImageReference, pushPaths: readonly PushPath[]): UnderPushPath | undefined {
  let best: PushPath | undefined;
  for (const path of pushPaths) {
    if (path.registry !== reference.registry) continue;
    if (reference.repository !== path.prefix && !reference.repository.startsWith(`${path.prefix}/`)) continue;
    if (!best || path.prefix.length > best.prefix.length) best = path;
  }
  if (!best) return undefined;
  const rest = reference.repository.slice(best.prefix.length + 1);
  const parts = rest === '' ? [] : rest.split('/');
  return {
    pushPath: best,
    component: parts[0],
    named: parts.length >= 2,
    repository: `${reference.registry}/${reference.repository}`,
  };
}

/**
 * Whether `user` may use `under` as their own image: a repository that
 * builds were pushed to is the image of those who pushed it (this keeps
 * images built under an earlier component their owner's, and keeps a user
 * whose new component equals someone's old one out of them); one nobody
 * pushed to is the user's whose component it is.
 */
export function ownsBuiltImage(under: UnderPushPath, user: string, pushedBy: readonly string[]): boolean {
  if (!under.named || under.component === undefined) return false;
  if (pushedBy.length > 0) return pushedBy.includes(user);
  return under.component === userPathComponent(user);
}

/**
 * Why `user` may not use `reference` as an image of their own: it lies under
 * one of `pushPaths` and is not their build. Undefined when it is theirs or
 * under no push path. `pushedBy` names the users whose builds went to a repository.
 */
export async function builtImageProblem(
  reference: ImageReference,
  user: string,
  pushPaths: readonly PushPath[],
  pushedBy: (repository: string) => Promise<string[]>,
): Promise<string | undefined> {
  const under = underPushPath(reference, pushPaths);
  if (!under) return undefined;
  return ownsBuiltImage(under, user, await pushedBy(under.repository)) ? undefined : notYourBuild(under, user);
}

/** The words for a user who names someone else's built image (or a path no build makes). */
function notYourBuild(under: UnderPushPath, user: string): string {
  const own = `${under.pushPath.path}/${userPathComponent(user)}/`;
  return `${under.repository} is under ${under.pushPath.path}/, where this service keeps the images its users build, and it is not one of yours (yours are under ${own}). Another user's image can be used only as they share it: start it from "Shared with you".`;
}
