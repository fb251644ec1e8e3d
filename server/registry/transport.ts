/**
 * HTTP to registries: the SSRF guard on every hop, redirects followed by hand
 * (credentials never cross to another host), retries with backoff on 429 and
 * 5xx honouring Retry-After, and failures mapped to {@link RegistryError}.
 */
import { fetch, type Dispatcher, type Response } from 'undici';
import { RegistryError } from './errors.js';
import { checkLiteralHost, createGuardedDispatcher, type AddressPolicy, type GuardedDispatcherTimeouts } from './guard.js';

export interface TransportOptions {
  /**
   * Which addresses the transport may connect to: checked on every
   * connection and every redirect. One policy: every hop has it (a registry
   * lends its trust to the token realm and redirects it names). A function:
   * each host gets its own (git hosts: a trusted host's redirect to another
   * host is held to that host's trust).
   */
  policy: AddressPolicy | ((url: URL) => AddressPolicy);
  timeouts: GuardedDispatcherTimeouts;
  /** Attempts for 429/5xx and dropped connections, the first included. */
  attempts: number;
  /** Longest wait between attempts; a longer Retry-After gives up at once. */
  maxRetryWaitMs: number;
  /** Swapped in tests to avoid real waiting. */
  sleep?: (ms: number) => Promise<void>;
}

export interface RegistryRequest {
  /**
   * POST for git's smart HTTP (builds/git.ts), which goes through the same
   * guard and redirect rules; DELETE for a manifest the clean-up removes.
   */
  method?: 'GET' | 'HEAD' | 'POST' | 'DELETE';
  /** A POST's body (sent again on a retry or a 307/308 redirect). */
  body?: Uint8Array;
  headers?: Record<string, string>;
  /** Sent only to this host (host[:port]); dropped on a redirect elsewhere. */
  authorization?: { host: string; value: string } | undefined;
  /** Cancels the request (a check past its deadline). */
  signal?: AbortSignal | undefined;
  /**
   * Hosts (host[:port], lower case) a redirect may lead to, besides the
   * guard's rules (a system's git hosts); undefined: any the guard allows.
   */
  redirectHosts?: readonly string[] | undefined;
}

const MAX_REDIRECTS = 5;
const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);

/** Seconds or an HTTP date, as Retry-After allows; undefined if absent or unreadable. */
export function retryAfterMs(header: string | null, now: number = Date.now()): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function tlsProblem(code: string): boolean {
  return /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|ERR_OSSL|HOSTNAME_MISMATCH)/.test(code) || code.includes('CERT');
}

/** Maps a failed fetch to what the user should hear. */
function networkError(url: URL, err: unknown): RegistryError {
  let cause: unknown = err;
  // undici wraps the socket error (and our guard's refusal) in `cause`.
  while (
    cause &&
    typeof cause === 'object' &&
    'cause' in cause &&
    !(cause instanceof RegistryError) &&
    !('code' in cause && (cause as { code?: unknown }).code)
  ) {
    cause = (cause as { cause: unknown }).cause;
  }
  if (cause instanceof RegistryError) return cause;
  const code = String((cause as { code?: unknown } | undefined)?.code ?? '');
  if (tlsProblem(code)) {
    return new RegistryError(
      'registry.tls',
      `A secure (TLS) connection to ${url.host} failed (${code}). The registry's certificate may be invalid or self-signed.`,
      { cause: err },
    );
  }
  const what =
    code === 'ENOTFOUND' || code === 'EAI_AGAIN'
      ? `the name ${url.hostname} does not resolve`
      : code === 'ECONNREFUSED'
        ? 'the connection was refused'
        : code.includes('TIMEOUT')
          ? 'it did not answer in time'
          : `the connection failed${code ? ` (${code})` : ''}`;
  return new RegistryError('registry.unreachable', `The registry ${url.host} cannot be reached: ${what}.`, { cause: err });
}

/** Performs guarded requests to registries and their token realms. */
export class RegistryTransport {
  private readonly sleep: (ms: number) => Promise<void>;
  /** One guarded dispatcher a policy (public addresses only, any address), made when first needed. */
  private readonly dispatchers = new Map<boolean, Dispatcher>();

  constructor(private readonly options: TransportOptions) {
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** The policy of a request to `url`. */
  private policyAt(url: URL): AddressPolicy {
    return typeof this.options.policy === 'function' ? this.options.policy(url) : this.options.policy;
  }

  /** The connections' guard and the redirects' check follow one policy. */
  private dispatcherFor(policy: AddressPolicy): Dispatcher {
    let dispatcher = this.dispatchers.get(policy.allowPrivate);
    if (!dispatcher) {
      dispatcher = createGuardedDispatcher({ allowPrivate: policy.allowPrivate }, this.options.timeouts);
      this.dispatchers.set(policy.allowPrivate, dispatcher);
    }
    return dispatcher;
  }

  /**
   * Sends the request, following redirects and retrying; returns the final
   * response (any status but 429/5xx after the last attempt, which throw).
   */
  async request(input: string | URL, request: RegistryRequest = {}): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await this.follow(new URL(input), request);
      } catch (err) {
        // A dropped connection is worth one more try; a refusal or TLS failure is not.
        const mapped = err instanceof RegistryError ? err : networkError(new URL(input), err);
        const transient = mapped.code === 'registry.unreachable' && /ECONNRESET|EPIPE|UND_ERR_SOCKET/.test(String(mapped.message));
        if (!transient || attempt >= this.options.attempts) throw mapped;
        await this.sleep(this.backoff(attempt));
        continue;
      }
      if (!RETRY_STATUS.has(response.status)) return response;
      const wait = retryAfterMs(response.headers.get('retry-after')) ?? this.backoff(attempt);
      await response.body?.cancel();
      const host = new URL(input).host;
      if (attempt >= this.options.attempts || wait > this.options.maxRetryWaitMs) {
        throw response.status === 429
          ? new RegistryError(
              'registry.rate_limited',
              `The registry ${host} is limiting requests (429)${wait > 0 ? `; it asks to wait ${Math.ceil(wait / 1000)} s` : ''}. Try the check again later.`,
            )
          : new RegistryError('registry.server_error', `The registry ${host} has a problem (HTTP ${response.status}). Try again later.`);
      }
      await this.sleep(wait);
    }
  }

  private backoff(attempt: number): number {
    // 0.5 s, 1 s, 2 s, … with jitter, so that replicas do not retry in step.
    return Math.min(this.options.maxRetryWaitMs, 500 * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
  }

  private async follow(start: URL, request: RegistryRequest): Promise<Response> {
    let url = start;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const policy = this.policyAt(url);
      checkLiteralHost(url, policy);
      // The caller's own User-Agent wins (a git client names itself, as git hosts expect).
      const headers: Record<string, string> = {
        ...(Object.keys(request.headers ?? {}).some((h) => h.toLowerCase() === 'user-agent')
          ? {}
          : { 'User-Agent': 'custom-images (JupyterHub service)' }),
        ...request.headers,
      };
      if (request.authorization && request.authorization.host === url.host) headers.Authorization = request.authorization.value;
      let response: Response;
      try {
        response = await fetch(url, {
          method: request.method ?? 'GET',
          headers,
          ...(request.body ? { body: request.body } : {}),
          redirect: 'manual',
          dispatcher: this.dispatcherFor(policy),
          ...(request.signal ? { signal: request.signal } : {}),
        });
      } catch (err) {
        throw networkError(url, err);
      }
      if (![301, 302, 303, 307, 308].includes(response.status)) return response;
      const location = response.headers.get('location');
      await response.body?.cancel();
      if (!location) throw new RegistryError('registry.protocol', `The registry ${url.host} redirected without saying where to.`);
      const next = new URL(location, url);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new RegistryError('registry.protocol', `The registry ${url.host} redirected to an unsupported address.`);
      }
      if (request.redirectHosts && !request.redirectHosts.includes(next.host.toLowerCase())) {
        throw new RegistryError(
          'registry.protocol',
          `${url.host} redirected to ${next.host}, which is not among the hosts allowed here (${request.redirectHosts.join(', ')}).`,
        );
      }
      // The address first (the refusal that matters most), then plain http: only where an admin trusts it.
      const nextPolicy = this.policyAt(next);
      checkLiteralHost(next, nextPolicy);
      if (next.protocol === 'http:' && !nextPolicy.allowPrivate) {
        throw new RegistryError(
          'registry.protocol',
          `The registry ${url.host} redirected to an insecure (http) address, ${next.host}: plain http is only for registries the hub admin trusts (CUSTOM_IMAGES_TRUSTED_REGISTRIES).`,
        );
      }
      url = next;
    }
    throw new RegistryError('registry.protocol', `The registry ${start.host} redirected more than ${MAX_REDIRECTS} times.`);
  }
}
