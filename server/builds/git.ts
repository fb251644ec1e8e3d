/**
 * A build's git context, fetched by the service (isomorphic-git over smart
 * HTTP), never by the engine: every request goes through the same address
 * guard and the same transport as registries (public addresses only, unless
 * an admin trusts the host; redirects followed by hand, without the token
 * crossing hosts or going to plain http), and the bytes received are
 * bounded. The token goes in an Authorization header only; it is never part
 * of a URL, a log line or the context.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import git from 'isomorphic-git';
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { AppError, upstream } from '../errors.js';
import { formatKiB } from '../format.js';
import { RegistryError } from '../registry/errors.js';
import type { AddressPolicy } from '../registry/guard.js';
import { RegistryTransport } from '../registry/transport.js';

export interface GitFetchRequest {
  url: string;
  /** Branch, tag or commit (full or abbreviated); blank: the default branch. */
  ref: string;
  username: string;
  token: string | undefined;
  signal: AbortSignal;
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
  timeoutMs: number;
}

export class GitFetcher {
  private readonly trusted: ReadonlySet<string>;
  /** One transport for hosts on public addresses, one for the hosts an admin trusts. */
  private readonly publicOnly: RegistryTransport;
  private readonly anyAddress: RegistryTransport;

  constructor(private readonly options: GitFetcherOptions) {
    this.trusted = new Set(options.trustedHosts.map((h) => h.toLowerCase()));
    const transport = (policy: AddressPolicy) =>
      new RegistryTransport({
        policy,
        timeouts: { connectTimeoutMs: 10_000, headersTimeoutMs: options.timeoutMs, bodyTimeoutMs: options.timeoutMs },
        attempts: 3,
        maxRetryWaitMs: 10_000,
      });
    this.publicOnly = transport({ allowPrivate: false });
    this.anyAddress = transport({ allowPrivate: true });
  }

  isTrusted(host: string): boolean {
    return this.trusted.has(host.toLowerCase());
  }

  /** Clones the repository and checks out `ref`; errors say what went wrong in words. */
  async fetch(request: GitFetchRequest): Promise<FetchedRepository> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'custom-images-git-'));
    const http = this.client(new URL(request.url), request.signal);
    const username = request.username || 'oauth2';
    const onAuth = request.token ? () => ({ username, password: request.token }) : () => ({ cancel: true });
    try {
      const ref = request.ref;
      await git.clone({
        fs,
        http,
        dir,
        url: request.url,
        onAuth,
        // A named branch or the default one needs only its tip; a commit or tag needs the history that holds it.
        ...(ref === '' ? { singleBranch: true, depth: 1 } : { singleBranch: false, noCheckout: true }),
      });
      if (ref !== '') await git.checkout({ fs, dir, ref: await resolve(dir, ref), force: true });
      const commit = await git.resolveRef({ fs, dir, ref: 'HEAD' });
      return { dir, commit };
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw gitError(err, request);
    }
  }

  /**
   * isomorphic-git's HTTP client on the registries' transport: the address
   * guard on every hop, redirects by hand (no downgrade to http unless the
   * host is trusted), the Authorization header for the repository's host
   * only, retries on 429/5xx; and the bytes received counted.
   */
  private client(start: URL, signal: AbortSignal): HttpClient {
    const transport = this.isTrusted(start.host) ? this.anyAddress : this.publicOnly;
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
      return {
        url: response.url || req.url,
        method,
        statusCode: response.status,
        statusMessage: response.statusText,
        headers: Object.fromEntries(response.headers.entries()),
        body: counted(),
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

async function collect(body: AsyncIterableIterator<Uint8Array> | Uint8Array[]): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return chunks;
}

/** A branch, a tag, or a (possibly abbreviated) commit id, to the commit it names. */
async function resolve(dir: string, ref: string): Promise<string> {
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

/** What went wrong with a fetch, for the build's message and log; never the token. */
function gitError(err: unknown, request: GitFetchRequest): AppError {
  if (err instanceof AppError) return err;
  const where = new URL(request.url);
  // isomorphic-git wraps what our HTTP client threw in an error of its own.
  const thrown = [err, (err as { cause?: unknown }).cause];
  const tooLarge = thrown.find((e) => e instanceof TooLarge);
  if (tooLarge) {
    return upstream(
      'failed',
      `The repository ${where.host}${where.pathname} is larger than ${formatKiB(tooLarge.maxBytes)}; build from a smaller repository.`,
      err,
    );
  }
  const guard = thrown.find((e) => e instanceof RegistryError);
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
