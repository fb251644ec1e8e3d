/**
 * A build's git context, fetched by the service (isomorphic-git over smart
 * HTTP), never by the engine: every request goes through the same address
 * guard and the same transport as registries (public addresses only, unless
 * an admin trusts the host). Trust belongs to a host[:port]: a redirect is
 * followed by hand and held to the trust of the host it names, never lent
 * the trust of the host that sent it (private addresses and plain http only
 * for a host trusted in its own right), and the token never crosses to
 * another host. The token goes in an Authorization header only; it is never
 * part of a URL, a log line or the context.
 *
 * What a repository may cost is bounded three times over: the bytes
 * received (the pack written to disk as it arrives, builds/uploadPack.ts);
 * each object of the pack before isomorphic-git inflates it
 * (builds/pack.ts); and the checkout, planned from its trees before a file
 * is written and counted again as it is written (builds/checkoutFs.ts), in
 * bytes and files. The checkout goes to the service's work directory (on the
 * data volume, not /tmp), one file at a time.
 */
import path from 'node:path';
import git from 'isomorphic-git';
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { AppError, invalidInput, upstream } from '../errors.js';
import { formatMiB } from '../format.js';
import { RegistryError } from '../registry/errors.js';
import type { AddressPolicy } from '../registry/guard.js';
import { RegistryTransport } from '../registry/transport.js';
import type { WorkDir } from '../workDir.js';
import { checkoutFs, CheckoutTooLarge, type CheckoutLimits } from './checkoutFs.js';
import { DirectoryNotUsable, findDirectory } from './contextDirectory.js';
import { PackObjectTooLarge, PackUnreadable } from './pack.js';
import { PackFile, packToDisk } from './uploadPack.js';

export interface GitFetchRequest {
  url: string;
  /** Branch, tag or commit (full or abbreviated); blank: the default branch. */
  ref: string;
  username: string;
  token: string | undefined;
  signal: AbortSignal;
  /**
   * A directory that must be in the commit's tree, a real directory with no
   * symbolic link on its path (builds/contextDirectory.ts, in its normal
   * form); '' or undefined: the top. Refused with a 400 naming the field.
   */
  directory?: string;
  /**
   * The hosts the system builds from (its git hosts); a redirect to any
   * other is refused, as the first URL's host is. Empty or undefined: any.
   */
  hosts?: readonly string[] | undefined;
}

export interface FetchedRepository {
  /** A folder with the work tree (and its .git, which a context leaves out); the caller removes it. */
  dir: string;
  commit: string;
}

export interface GitFetcherOptions {
  /** Hosts (host[:port]) an admin trusts: they may be on private addresses. */
  trustedHosts: readonly string[];
  /** The most a fetch may download. */
  maxBytes: number;
  /** What the checkout may write, and the largest object the repository may hold. */
  checkout: CheckoutLimits;
  /** Where checkouts go. */
  workDir: WorkDir;
  timeoutMs: number;
}

export class GitFetcher {
  private readonly trusted: ReadonlySet<string>;
  /** Each host its own trust, the first request's and every redirect's alike. */
  private readonly transport: RegistryTransport;

  constructor(private readonly options: GitFetcherOptions) {
    this.trusted = new Set(options.trustedHosts.map((h) => h.toLowerCase()));
    this.transport = new RegistryTransport({
      policy: (url): AddressPolicy => ({ allowPrivate: this.isTrusted(url.host) }),
      timeouts: { connectTimeoutMs: 10_000, headersTimeoutMs: options.timeoutMs, bodyTimeoutMs: options.timeoutMs },
      attempts: 3,
      maxRetryWaitMs: 10_000,
    });
  }

  isTrusted(host: string): boolean {
    return this.trusted.has(host.toLowerCase());
  }

  /**
   * Fetches the repository and checks out `ref`; errors say what went wrong
   * in words. The pack goes to disk as it arrives (builds/uploadPack.ts) and
   * is checked (builds/pack.ts) and indexed once complete.
   */
  async fetch(request: GitFetchRequest): Promise<FetchedRepository> {
    return this.fetchInto(request, true);
  }

  /**
   * Whether `request.directory` is a real directory of the repository at
   * `request.ref`, read from its trees without a checkout (the same bounded
   * fetch, into the work directory, removed after); the commit it looked at.
   *
   * @throws AppError 400 naming `gitDirectory` when it is not; the fetch's errors otherwise.
   */
  async assertDirectory(request: GitFetchRequest): Promise<string> {
    const { dir, commit } = await this.fetchInto(request, false);
    this.options.workDir.remove(dir);
    return commit;
  }

  /**
   * The commit `request.ref` names now, asked of the git server with one
   * small request (the refs it advertises: protocol v1, no pack), through
   * the same guard and transport as a fetch; undefined for an abbreviated
   * commit id, which only a fetch can resolve. A full commit id is asked
   * about too: the request says whether the repository can be read at all
   * (a private one without a token is refused here, not by a build later);
   * whether it holds that commit only the fetch can tell.
   *
   * @throws AppError 400 naming `gitRef` when the repository has no such branch or tag; the fetch's errors otherwise.
   */
  async resolveCommit(request: Omit<GitFetchRequest, 'directory'>): Promise<string | undefined> {
    const ref = request.ref;
    const username = request.username || 'oauth2';
    const onAuth = request.token ? () => ({ username, password: request.token }) : () => ({ cancel: true });
    let refs: Array<{ ref: string; oid: string; target?: string; peeled?: string }>;
    try {
      // The client never sees a pack here: protocol v1 advertises the refs in the GET of info/refs.
      const unused = new PackFile(this.options.workDir.folder);
      refs = await git.listServerRefs({
        http: this.client(new URL(request.url), request, unused),
        url: request.url,
        onAuth,
        protocolVersion: 1,
        symrefs: true,
        peelTags: true,
      });
    } catch (err) {
      throw gitError(err, request);
    }
    const named = (name: string) => refs.find((r) => r.ref === name);
    const head = named('HEAD');
    const found =
      ref === '' ? head : (named(`refs/heads/${ref}`) ?? named(`refs/tags/${ref}`) ?? (ref.startsWith('refs/') ? named(ref) : undefined));
    if (found) return found.peeled ?? found.oid;
    if (/^[0-9a-f]{40}$/i.test(ref)) return ref.toLowerCase();
    if (/^[0-9a-f]{4,39}$/i.test(ref)) return undefined;
    throw invalidInput({ gitRef: `The repository has no branch or tag "${ref}": check the name, or give a commit id` });
  }

  private async fetchInto(request: GitFetchRequest, checkout: boolean): Promise<FetchedRepository> {
    const dir = this.options.workDir.make('git');
    const fs = checkoutFs(dir, this.options.checkout);
    // One cache for all the calls: the pack is read into memory once, not once a call.
    const cache = {};
    const pack = new PackFile(path.join(dir, '.git', 'objects', 'pack'));
    const http = this.client(new URL(request.url), request, pack);
    const username = request.username || 'oauth2';
    const onAuth = request.token ? () => ({ username, password: request.token }) : () => ({ cancel: true });
    try {
      const ref = request.ref;
      await git.init({ fs, dir });
      await git.addRemote({ fs, dir, remote: 'origin', url: request.url });
      const fetched = await git.fetch({
        fs,
        http,
        dir,
        cache,
        remote: 'origin',
        onAuth,
        // A named branch or the default one needs only its tip; a commit or tag needs the history that holds it.
        ...(ref === '' ? { singleBranch: true, depth: 1, tags: false } : { singleBranch: false, tags: true }),
      });
      const packFile = await pack.finish();
      // Read through the checkout's file system, which checks every object before isomorphic-git inflates it.
      if (packFile) await git.indexPack({ fs, dir, cache, filepath: path.relative(dir, packFile) });
      const commit = ref === '' ? fetched.fetchHead : await resolve(fs, dir, ref);
      if (!commit) throw upstream('failed', 'The repository has no commits.');
      if (request.directory) await assertDirectoryIn(fs, dir, cache, commit, request.directory);
      if (!checkout) return { dir, commit };
      await assertCheckoutFits(fs, dir, cache, commit, this.options.checkout);
      // One file at a time: isomorphic-git holds each file's content whole while it writes it.
      await git.checkout({ fs, dir, cache, ref: commit, force: true, nonBlocking: true, batchSize: 1 });
      return { dir, commit };
    } catch (err) {
      await pack.abandon();
      this.options.workDir.remove(dir);
      throw gitError(err, request);
    }
  }

  /**
   * isomorphic-git's HTTP client on the registries' transport: the address
   * guard on every hop, redirects by hand (each hop's host its own trust;
   * plain http only to a trusted host), the Authorization header for the
   * repository's host only, retries on 429/5xx; and the bytes received
   * counted.
   */
  private client(start: URL, from: Pick<GitFetchRequest, 'signal' | 'hosts'>, pack: PackFile | undefined): HttpClient {
    const transport = this.transport;
    const signal = from.signal;
    const redirectHosts = from.hosts && from.hosts.length > 0 ? from.hosts.map((h) => h.toLowerCase()) : undefined;
    let received = 0;
    const maxBytes = this.options.maxBytes;
    const request = async (req: GitHttpRequest): Promise<GitHttpResponse> => {
      const headers: Record<string, string> = {};
      let authorization: string | undefined;
      for (const [name, value] of Object.entries(req.headers ?? {})) {
        if (name.toLowerCase() === 'authorization') authorization = value;
        else headers[name] = value;
      }
      const method = req.method === 'POST' ? 'POST' : 'GET';
      const response = await transport.request(req.url, {
        method,
        headers,
        ...(req.body ? { body: Buffer.concat(await collect(req.body)) } : {}),
        authorization: authorization ? { host: start.host, value: authorization } : undefined,
        signal,
        redirectHosts,
      });
      const stream = response.body;
      async function* counted(): AsyncGenerator<Uint8Array> {
        if (!stream) return;
        for await (const chunk of stream) {
          received += chunk.length;
          if (received > maxBytes) throw new TooLarge(maxBytes);
          yield chunk;
        }
      }
      // The answer that carries the pack: its pack data goes to disk, the rest on to isomorphic-git.
      const carriesPack = method === 'POST' && new URL(req.url).pathname.endsWith('/git-upload-pack') && response.ok;
      if (carriesPack && !pack) throw new Error('a pack came where only refs were asked for');
      return {
        url: response.url || req.url,
        method,
        statusCode: response.status,
        statusMessage: response.statusText,
        headers: Object.fromEntries(response.headers.entries()),
        body: carriesPack && pack ? packToDisk(counted(), pack) : counted(),
      };
    };
    return { request };
  }
}

class TooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super('repository too large');
  }
}

type CheckoutFs = ReturnType<typeof checkoutFs>;

/** Nested folders deeper than this are refused: no checkout needs them, and the plan below recurses. */
const MAX_DEPTH = 256;

/**
 * Plans the checkout of `commit` from its trees before a file is written:
 * the bytes and entries its work tree would get. Each distinct tree and blob
 * is read once (a tree named a thousand times is counted a thousand times,
 * read once), and the plan stops at the first limit it passes.
 */
async function assertCheckoutFits(fs: CheckoutFs, dir: string, cache: object, commit: string, limits: CheckoutLimits): Promise<void> {
  const blobs = new Map<string, number>();
  const trees = new Map<string, { bytes: number; files: number }>();
  const check = (sum: { bytes: number; files: number }) => {
    if (sum.files > limits.maxFiles) throw new CheckoutTooLarge('files', limits.maxFiles);
    if (sum.bytes > limits.maxBytes) throw new CheckoutTooLarge('bytes', limits.maxBytes);
  };
  const tree = async (oid: string, depth: number): Promise<{ bytes: number; files: number }> => {
    const known = trees.get(oid);
    if (known) return known;
    if (depth > MAX_DEPTH) throw new CheckoutTooLarge('depth', MAX_DEPTH);
    const sum = { bytes: 0, files: 0 };
    for (const entry of (await git.readTree({ fs, dir, cache, oid })).tree) {
      sum.files += 1;
      if (entry.type === 'tree') {
        const sub = await tree(entry.oid, depth + 1);
        sum.bytes += sub.bytes;
        sum.files += sub.files;
      } else if (entry.type === 'blob') {
        let size = blobs.get(entry.oid);
        if (size === undefined) {
          size = (await git.readBlob({ fs, dir, cache, oid: entry.oid })).blob.byteLength;
          blobs.set(entry.oid, size);
        }
        sum.bytes += size;
      }
      check(sum);
    }
    trees.set(oid, sum);
    return sum;
  };
  const { commit: read } = await git.readCommit({ fs, dir, cache, oid: commit });
  check(await tree(read.tree, 0));
}

/** `directory` in `commit`'s tree (builds/contextDirectory.ts); a 400 naming the field when it is not usable. */
async function assertDirectoryIn(fs: CheckoutFs, dir: string, cache: object, commit: string, directory: string): Promise<void> {
  const { commit: read } = await git.readCommit({ fs, dir, cache, oid: commit });
  try {
    await findDirectory(async (oid) => (await git.readTree({ fs, dir, cache, oid })).tree, read.tree, directory, commit);
  } catch (err) {
    if (err instanceof DirectoryNotUsable) throw invalidInput({ [err.field]: err.message });
    throw err;
  }
}

async function collect(body: AsyncIterableIterator<Uint8Array> | Uint8Array[]): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return chunks;
}

/** A branch, a tag, or a (possibly abbreviated) commit id, to the commit it names. */
async function resolve(fs: CheckoutFs, dir: string, ref: string): Promise<string> {
  for (const candidate of [`refs/remotes/origin/${ref}`, `refs/tags/${ref}`, ref]) {
    try {
      const oid = await git.resolveRef({ fs, dir, ref: candidate });
      // An annotated tag names a tag object; the commit it points to is checked out.
      const tag = await git.readTag({ fs, dir, oid }).catch(() => undefined);
      return tag ? tag.tag.object : oid;
    } catch {
      // not this kind of ref
    }
  }
  if (/^[0-9a-f]{4,40}$/i.test(ref)) {
    try {
      return await git.expandOid({ fs, dir, oid: ref.toLowerCase() });
    } catch {
      // not a commit of this repository
    }
  }
  throw upstream('failed', `The repository has no branch, tag or commit "${ref}".`);
}

/** Every error inside `err`: isomorphic-git wraps what our HTTP client or file system threw (cause, errors). */
function thrownWithin(err: unknown, depth = 0): unknown[] {
  if (!err || typeof err !== 'object' || depth > 4) return [err];
  const inner = err as { cause?: unknown; errors?: unknown[] };
  return [err, ...thrownWithin(inner.cause, depth + 1), ...(inner.errors ?? []).flatMap((e) => thrownWithin(e, depth + 1))];
}

/** What went wrong with a fetch, for the build's message and log; never the token. */
function gitError(err: unknown, request: GitFetchRequest): AppError {
  if (err instanceof AppError) return err;
  const where = new URL(request.url);
  const thrown = thrownWithin(err);
  const find = <T>(type: new (...args: never[]) => T): T | undefined => thrown.find((e): e is T => e instanceof type);
  const received = find(TooLarge);
  if (received) {
    return upstream(
      'failed',
      `The repository ${where.host}${where.pathname} is larger than ${formatMiB(received.maxBytes)} (CUSTOM_IMAGES_BUILD_GIT_MAX_MB); build from a smaller repository.`,
      err,
    );
  }
  const object = find(PackObjectTooLarge);
  if (object) {
    return upstream(
      'failed',
      `The repository holds a file of ${formatMiB(object.bytes)}; at most ${formatMiB(object.maxBytes)} (CUSTOM_IMAGES_BUILD_GIT_FILE_MAX_MB) are allowed. Keep large data out of the repository.`,
      err,
    );
  }
  const checkout = find(CheckoutTooLarge);
  if (checkout) {
    const what =
      checkout.limit === 'bytes'
        ? `is larger than ${formatMiB(checkout.max)} (CUSTOM_IMAGES_BUILD_CHECKOUT_MAX_MB)`
        : checkout.limit === 'files'
          ? `has more than ${checkout.max} files (CUSTOM_IMAGES_BUILD_CHECKOUT_MAX_FILES)`
          : `has folders nested more than ${checkout.max} deep`;
    return upstream('failed', `The repository's checkout ${what}; build from a smaller repository.`, err);
  }
  const unreadable = find(PackUnreadable);
  if (unreadable) return upstream('failed', `${where.host}${where.pathname} sent a pack git cannot read: ${unreadable.message}.`, err);
  const guard = find(RegistryError);
  if (guard) {
    const refused = guard.message.replace(/The registry/g, 'The git host').replace(/registries/g, 'git hosts');
    return upstream('failed', refused.replace('CUSTOM_IMAGES_TRUSTED_REGISTRIES', 'CUSTOM_IMAGES_TRUSTED_GIT_HOSTS'), err);
  }
  const code = (err as { code?: string }).code ?? '';
  const status = (err as { data?: { statusCode?: number } }).data?.statusCode;
  if (code === 'HttpError' && (status === 401 || status === 403)) {
    return upstream(
      'failed',
      request.token
        ? `${where.host} refused the access token for ${where.pathname}: it may have expired or lack read access to the repository.`
        : `${where.host}${where.pathname} needs an access token: the repository is private.`,
      err,
    );
  }
  if (code === 'UserCanceledError')
    return upstream('failed', `${where.host}${where.pathname} needs an access token: the repository is private.`, err);
  if (code === 'HttpError' && status === 404) return upstream('failed', `There is no repository at ${where.href}.`, err);
  if (request.signal.aborted) return upstream('timeout', `Fetching ${where.href} was stopped (the build's time limit).`, err);
  const message = err instanceof Error ? err.message : String(err);
  return upstream('failed', `The repository ${where.href} could not be fetched: ${message.slice(0, 300)}`, err);
}
