/**
 * Launch links, read: `open?repo=URL&ref=REF&system=ID&urlpath=PATH` and the
 * short forms `open/<prefix>/ORG/REPO[/REF]` (prefix → a GitHub-style host:
 * `gh` → https://github.com, `gl` → https://gitlab.com, and whatever an
 * admin adds in CUSTOM_IMAGES_LINK_HOSTS). Pure: nothing here asks the
 * network; the host's place on the system's list and the repository's
 * readability are the service's (links/service.ts).
 *
 * A link is typed by a stranger and followed by a visitor: everything in it
 * is refused in words naming its field, never acted on half-read.
 */
import { invalidInput } from '../errors.js';

/** A link as the service acts on it. */
export interface LaunchLink {
  /** The repository, an https URL without credentials, query or fragment (http only for a trusted host). */
  repo: string;
  /** Branch, tag or commit; '' for the repository's default branch. */
  ref: string;
  /** A system's slug; '' for the site's choice (the only system that builds, or the default one). */
  system: string;
  /** Where the visitor lands inside their server, relative (`lab/tree/paper.ipynb`); '' for the server's default page. */
  urlpath: string;
}

/** The short forms' prefixes, each to the origin of a GitHub-style host (`https://github.com`). */
export type LinkHosts = ReadonlyMap<string, string>;

/** What a site has without CUSTOM_IMAGES_LINK_HOSTS. */
export const DEFAULT_LINK_HOSTS: ReadonlyArray<[string, string]> = [
  ['gh', 'https://github.com'],
  ['gl', 'https://gitlab.com'],
];

const GIT_REF = /^(?!-)(?!.*\.\.)(?!.*\/\/)[A-Za-z0-9._/-]+$/;
const SYSTEM = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** One path component of ORG/REPO in a short form: what GitHub and GitLab allow. */
const COMPONENT = /^[A-Za-z0-9_.-]{1,100}$/;
/** What a path and query inside the server may hold as written in the link: printable ASCII. */
const URLPATH_CHARS = /^[\x21-\x7e]*$/;
const URLPATH_MAX = 1024;

/** The fields of a link as a query (or a form) has them. */
export interface LinkFields {
  repo?: unknown;
  ref?: unknown;
  system?: unknown;
  urlpath?: unknown;
}

/** Reads the query form; throws a 400 naming each wrong field. */
export function parseLink(fields: LinkFields, trustedHost: (host: string) => boolean): LaunchLink {
  const problems: Record<string, string> = {};
  const repo = checkRepo(text(fields.repo), trustedHost);
  if (!repo.ok) problems.repo = repo.message;
  const ref = text(fields.ref);
  if (ref !== '' && (ref.length > 255 || !GIT_REF.test(ref)))
    problems.ref = 'The ref is a branch, tag or commit: letters, digits, . _ / -, e.g. main, v1.2 or a commit id';
  const system = text(fields.system);
  if (system !== '' && !SYSTEM.test(system)) problems.system = "The system is a system's short name: letters, digits, . _ -";
  const urlpath = checkUrlpath(text(fields.urlpath));
  if (!urlpath.ok) problems.urlpath = urlpath.message;
  if (Object.keys(problems).length > 0 || !repo.ok || !urlpath.ok) throw invalidInput(problems);
  return { repo: repo.url, ref, system, urlpath: urlpath.path };
}

/**
 * Reads a short form's path after `open/`: `PREFIX/ORG/REPO[/REF…]` (a ref
 * may hold slashes: `feature/x`); `system` and `urlpath` come from the query.
 */
export function parseShortLink(
  pathAfterOpen: string,
  query: Pick<LinkFields, 'system' | 'urlpath'>,
  hosts: LinkHosts,
  trustedHost: (host: string) => boolean,
): LaunchLink {
  const [prefix = '', org = '', repo = '', ...ref] = pathAfterOpen.split('/');
  const origin = hosts.get(prefix);
  if (origin === undefined) {
    const known = [...hosts.keys()].map((k) => `${k}/`).join(', ');
    throw invalidInput({ repo: `"${prefix}" is not a short form of a git host here; the short forms are ${known || 'none'}` });
  }
  if (!COMPONENT.test(org) || !COMPONENT.test(repo) || org.startsWith('.') || repo.startsWith('.'))
    throw invalidInput({ repo: `A short link names the repository as ${prefix}/ORG/REPO[/REF], e.g. ${prefix}/lab/paper/main` });
  return parseLink({ repo: `${origin}/${org}/${repo}`, ref: ref.join('/'), ...query }, trustedHost);
}

/** The link back as the query form, relative to the service's prefix: what the image page and badges hand out. */
export function linkPath(link: LaunchLink): string {
  const query = new URLSearchParams({ repo: link.repo });
  if (link.ref) query.set('ref', link.ref);
  if (link.system) query.set('system', link.system);
  if (link.urlpath) query.set('urlpath', link.urlpath);
  return `open?${query.toString()}`;
}

/** Where the visitor lands: `/user/NAME/<urlpath>` under the hub's base URL. */
export function landingPath(hubBaseUrl: string, user: string, urlpath: string): string {
  return `${hubBaseUrl}user/${encodeURIComponent(user)}/${urlpath}`;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}

type Checked<T> = ({ ok: true } & T) | { ok: false; message: string };

/** The repository URL: https (http for a host the admin trusts), no credentials, query or fragment. */
export function checkRepo(value: string, trustedHost: (host: string) => boolean): Checked<{ url: string }> {
  if (value === '') return { ok: false, message: 'Name the repository: repo=https://host/org/repo' };
  if (value.length > 2048) return { ok: false, message: 'The repository URL has at most 2048 characters' };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, message: 'The repository is an https URL, e.g. https://github.com/lab/paper' };
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && trustedHost(url.host)))
    return { ok: false, message: 'The repository URL starts with https://' };
  if (url.username || url.password) return { ok: false, message: 'A link carries no credentials: remove them from the repository URL' };
  if (url.search || url.hash) return { ok: false, message: 'The repository URL has no ?query or #fragment' };
  if (url.pathname === '/' || url.pathname === '')
    return { ok: false, message: 'The repository URL names a repository: https://host/org/repo' };
  return { ok: true, url: url.href };
}

/**
 * `urlpath`: a path (and query) inside the visitor's server, relative to
 * `/user/NAME/`. Refused: a scheme or host (`https://…`, `//host`), a
 * backslash (browsers read it as a slash), a `..` segment (it would climb
 * out of the server to the hub, or another user's server), also when
 * percent-encoded, and control or non-ASCII characters. One leading `/` is
 * dropped, as Binder's links often carry one.
 */
export function checkUrlpath(value: string): Checked<{ path: string }> {
  if (value === '') return { ok: true, path: '' };
  if (value.length > URLPATH_MAX) return { ok: false, message: `urlpath has at most ${URLPATH_MAX} characters` };
  const bad = {
    ok: false as const,
    message: 'urlpath is a path inside your server, such as lab/tree/paper.ipynb: no scheme or host, no "..", no backslash',
  };
  if (value.startsWith('//')) return bad;
  const rel = value.startsWith('/') ? value.slice(1) : value;
  let decoded: string;
  try {
    decoded = decodeURIComponent(rel);
  } catch {
    return bad;
  }
  // As written: printable ASCII only (a space or a non-ASCII letter is percent-encoded in a link).
  if (!URLPATH_CHARS.test(rel) || rel.includes('#')) return bad;
  // As the server will read it: no control character, and the same rules once decoded.
  for (const form of [rel, decoded]) {
    if ([...form].some((c) => c < ' ' || c === '\x7f' || c === '\\') || form.startsWith('/')) return bad;
    // A scheme is letters before a colon in the first segment (`javascript:`, `https:`).
    if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(form)) return bad;
    const pathPart = form.split('?')[0] ?? '';
    if (pathPart.split('/').some((segment) => segment === '..' || segment === '.')) return bad;
  }
  return { ok: true, path: rel };
}

/** Reads CUSTOM_IMAGES_LINK_HOSTS (`gh=https://github.com,gitea=https://git.example.org`) into prefixes; errors name the entry. */
export function parseLinkHosts(value: string): { hosts: Map<string, string> } | { error: string } {
  const hosts = new Map<string, string>();
  for (const entry of value
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [prefix = '', origin = ''] = entry.split('=', 2).map((s) => s.trim());
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(prefix)) return { error: `"${entry}": the short form is lower-case letters, digits and -` };
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return { error: `"${entry}": the host is an origin such as https://git.example.org` };
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      return { error: `"${entry}": the host is an origin such as https://git.example.org` };
    if (url.pathname !== '/' || url.search || url.hash || url.username)
      return { error: `"${entry}": only the origin, such as https://git.example.org (no path)` };
    hosts.set(prefix, url.origin);
  }
  return { hosts };
}
