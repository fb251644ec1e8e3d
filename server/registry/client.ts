/**
 * An OCI distribution client: the /v2/ challenge, Basic and Bearer auth
 * (tokens cached until they expire), manifests and indexes in OCI and Docker
 * media types, platform selection, digests verified, blobs streamed with
 * size limits.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Response } from 'undici';
import { parseChallenges, type Challenge } from './challenge.js';
import { RegistryError } from './errors.js';
import { assertPublicHost, bareHost, createGuardedDispatcher, type AddressPolicy } from './guard.js';
import { formatPlatform, normalizePlatform, offeredPlatforms, selectPlatform, type Platform } from './platform.js';
import { registryApiHost, type ImageReference } from './reference.js';
import { RegistryTransport } from './transport.js';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

const ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');

/** A content descriptor (OCI image spec). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[] | undefined;
  platform?: { os?: string; architecture?: string; variant?: string } | undefined;
  annotations?: Record<string, string> | undefined;
}

/** The parts of the image config we use. */
export interface ImageConfig {
  os?: string;
  architecture?: string;
  variant?: string;
  config?: {
    Env?: string[] | null;
    User?: string;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
  };
}

/** An image resolved to one platform. */
export interface ResolvedImage {
  /** The digest the reference points at (the index's, for a multi-platform image). */
  digest: string;
  /** The platform manifest's digest: what a spawner pulls by. */
  manifestDigest: string;
  platform: string;
  config: ImageConfig;
  configDigest: string;
  layers: Descriptor[];
  /** The sum of the layers' sizes, compressed. */
  size: number;
}

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /**
   * Registries (host or host:port, as image references name them) an admin
   * allowed on private addresses and plain http, with the realm and the
   * redirects they name.
   */
  trustedHosts?: Iterable<string>;
  connectTimeoutMs?: number;
  /** How long to wait for response headers. */
  headersTimeoutMs?: number;
  /** Longest silence while a body streams. */
  bodyTimeoutMs?: number;
  maxManifestBytes?: number;
  maxConfigBytes?: number;
  /** Largest single layer (compressed) we read. */
  maxLayerBytes?: number;
  /** Largest image (sum of compressed layers) we read. */
  maxImageBytes?: number;
  attempts?: number;
  maxRetryWaitMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** How long a HEAD's answer is reused (0: always ask). */
  digestTtlMs?: number;
}

const MiB = 1024 * 1024;
/** What of a registry's error answer is read for its error code. */
const ERROR_BODY_BYTES = 64 * 1024;

interface CachedToken {
  value: string;
  expires: number;
}

/** A registry as image references name it, for comparing: lower case, without the https default port. */
export function registryKey(hostPort: string): string {
  return hostPort.trim().toLowerCase().replace(/:443$/, '');
}

/** The registry client; one per service, shared by all checks (it holds the token cache). */
export class RegistryClient {
  readonly limits: { manifest: number; config: number; layer: number; image: number };
  private readonly trusted: ReadonlySet<string>;
  /** For registries on public addresses only, and the one for registries an admin trusts. */
  private readonly publicOnly: RegistryTransport;
  private readonly anyAddress: RegistryTransport;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly digests = new Map<string, { digest: string | undefined; expires: number }>();
  private readonly pendingDigests = new Map<string, Promise<string | undefined>>();
  /** How long a tag's digest from a HEAD is taken as current (launches ask often). */
  readonly digestTtlMs: number;
  private readonly now: () => number;

  constructor(options: RegistryClientOptions = {}) {
    this.trusted = new Set([...(options.trustedHosts ?? [])].map(registryKey));
    this.limits = {
      manifest: options.maxManifestBytes ?? 4 * MiB,
      config: options.maxConfigBytes ?? 16 * MiB,
      layer: options.maxLayerBytes ?? 16 * 1024 * MiB,
      image: options.maxImageBytes ?? 32 * 1024 * MiB,
    };
    this.now = options.now ?? Date.now;
    this.digestTtlMs = options.digestTtlMs ?? 10_000;
    const transport = (policy: AddressPolicy) =>
      new RegistryTransport({
        dispatcher: createGuardedDispatcher(policy, {
          connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
          headersTimeoutMs: options.headersTimeoutMs ?? 30_000,
          bodyTimeoutMs: options.bodyTimeoutMs ?? 60_000,
        }),
        policy,
        attempts: options.attempts ?? 4,
        maxRetryWaitMs: options.maxRetryWaitMs ?? 10_000,
        ...(options.sleep ? { sleep: options.sleep } : {}),
      });
    this.publicOnly = transport({ allowPrivate: false });
    this.anyAddress = transport({ allowPrivate: true });
  }

  /** A session for one repository, with the user's credentials if any; `signal` cancels its requests. */
  session(reference: ImageReference, credentials?: RegistryCredentials, signal?: AbortSignal): RegistrySession {
    const trusted = this.isTrusted(reference.registry);
    return new RegistrySession(this, trusted ? this.anyAddress : this.publicOnly, trusted, reference, credentials, signal);
  }

  /** Whether an admin trusts this registry (host or host:port, as references name it). */
  isTrusted(registry: string): boolean {
    return this.trusted.has(registryKey(registry));
  }

  /**
   * Before the Docker engine pulls from `registry`: the engine resolves and
   * connects by itself, so the same rule is applied to its address here.
   * (The engine may still be redirected later, e.g. for blobs; an egress
   * policy on the Docker host closes that, see the README.)
   */
  async assertEngineMayPull(registry: string): Promise<void> {
    if (this.isTrusted(registry)) return;
    await assertPublicHost(bareHost(new URL(`https://${registryApiHost(registry)}/`)));
  }

  /** @internal token cache shared by sessions */
  cachedToken(key: string): string | undefined {
    const hit = this.tokens.get(key);
    if (hit && hit.expires > this.now()) return hit.value;
    if (hit) this.tokens.delete(key);
    return undefined;
  }

  /** @internal */
  storeToken(key: string, value: string, expiresInSeconds: number): void {
    // Renew a little early so that a token does not expire mid-request.
    this.tokens.set(key, { value, expires: this.now() + Math.max(0, expiresInSeconds - 10) * 1000 });
  }

  /**
   * @internal A tag's digest as answered within the last {@link digestTtlMs};
   * otherwise `ask` runs once for every caller with the same key meanwhile.
   */
  reusedDigest(key: string, ask: () => Promise<string | undefined>): Promise<string | undefined> {
    const hit = this.digests.get(key);
    if (hit && hit.expires > this.now()) return Promise.resolve(hit.digest);
    let pending = this.pendingDigests.get(key);
    if (!pending) {
      pending = ask()
        .then((digest) => {
          if (this.digestTtlMs > 0) {
            if (this.digests.size > 10_000) this.digests.clear();
            this.digests.set(key, { digest, expires: this.now() + this.digestTtlMs });
          }
          return digest;
        })
        .finally(() => this.pendingDigests.delete(key));
      this.pendingDigests.set(key, pending);
    }
    return pending;
  }

}

/** Requests for one repository on one registry, authenticated as needed. */
export class RegistrySession {
  private base: URL | undefined;
  private authorization: string | undefined;
  private challenge: Challenge | undefined;
  private readonly apiHost: string;

  constructor(
    private readonly client: RegistryClient,
    private readonly transport: RegistryTransport,
    /** An admin trusts this registry: private addresses and plain http are allowed for it. */
    private readonly trusted: boolean,
    readonly reference: ImageReference,
    private readonly credentials: RegistryCredentials | undefined,
    private readonly signal?: AbortSignal,
  ) {
    this.apiHost = registryApiHost(reference.registry);
  }

  /**
   * The manifest digest the reference points at, by HEAD, without downloading
   * it. Answers are reused for a few seconds, per credentials: a spawner hook
   * asking for many launches costs the registry one request.
   */
  async headDigest(options: { fresh?: boolean } = {}): Promise<string | undefined> {
    const ref = this.reference.digest ?? this.reference.tag ?? 'latest';
    const ask = async () => {
      const response = await this.get(`manifests/${ref}`, { method: 'HEAD', accept: ACCEPT });
      await this.expectOk(response, 'manifest');
      return response.headers.get('docker-content-digest') ?? undefined;
    };
    // A fresh answer (a check) is not shared: only launches reuse each other's answers, per credentials.
    if (options.fresh) return ask();
    const who = this.credentials ? `${this.credentials.username}:${createHash('sha256').update(this.credentials.password).digest('hex')}` : '';
    return this.client.reusedDigest(`${this.reference.registry}/${this.reference.repository}:${ref}|${who}`, ask);
  }

  /** Resolves the reference to one platform's manifest, config and layers. */
  async resolve(wanted: Platform): Promise<ResolvedImage> {
    const ref = this.reference.digest ?? this.reference.tag ?? 'latest';
    const top = await this.manifest(ref, this.reference.digest);
    let manifest = top;
    if (top.kind === 'index') {
      const manifests = (top.body.manifests ?? []) as Descriptor[];
      const chosen = selectPlatform(manifests, wanted);
      if (!chosen) {
        const offered = offeredPlatforms(manifests);
        throw new RegistryError(
          'platform.missing',
          `${this.reference.normalized} has no image for ${formatPlatform(wanted)}; it offers ${offered.join(', ') || 'no platform we recognise'}.`,
        );
      }
      manifest = await this.manifest(chosen.digest, chosen.digest);
      if (manifest.kind !== 'manifest') throw new RegistryError('registry.unsupported', 'An image index points to another index; nested indexes are not supported.');
    }
    const configDescriptor = manifest.body.config as Descriptor | undefined;
    const layers = (manifest.body.layers ?? []) as Descriptor[];
    if (!configDescriptor?.digest || !Array.isArray(layers)) {
      throw new RegistryError('registry.protocol', `The manifest of ${this.reference.normalized} has no config or layers.`);
    }
    if (!Number.isSafeInteger(configDescriptor.size) || configDescriptor.size <= 0) {
      throw new RegistryError('registry.protocol', `The manifest of ${this.reference.normalized} gives its config no size; a valid manifest states it in bytes.`);
    }
    if (configDescriptor.size > this.client.limits.config) {
      throw new RegistryError('registry.too_large', `The image config is ${configDescriptor.size} bytes; at most ${this.client.limits.config} are read.`);
    }
    const configBytes = await this.readBlob(configDescriptor, this.client.limits.config);
    let config: ImageConfig;
    try {
      config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
    } catch (cause) {
      throw new RegistryError('registry.protocol', 'The image config is not valid JSON.', { cause });
    }
    const actual = normalizePlatform({ os: config.os ?? '', architecture: config.architecture ?? '', variant: config.variant });
    const target = normalizePlatform(wanted);
    if (top.kind === 'manifest' && config.os && config.architecture && (actual.os !== target.os || actual.architecture !== target.architecture)) {
      throw new RegistryError(
        'platform.missing',
        `${this.reference.normalized} is built for ${formatPlatform(actual)} only; this system runs ${formatPlatform(target)}.`,
      );
    }
    for (const layer of layers) {
      // Every limit counts sizes: a layer without a positive one would switch them off.
      if (!Number.isSafeInteger(layer.size) || layer.size <= 0) {
        throw new RegistryError('registry.protocol', `The manifest of ${this.reference.normalized} gives a layer (${String(layer.digest).slice(0, 19)}) no size; a valid manifest states every layer's size in bytes.`);
      }
    }
    const size = layers.reduce((sum, l) => sum + l.size, 0);
    for (const layer of layers) {
      if (layer.size > this.client.limits.layer) {
        throw new RegistryError('registry.too_large', `A layer of ${this.reference.normalized} is ${formatBytes(layer.size)}; layers over ${formatBytes(this.client.limits.layer)} are not checked.`);
      }
    }
    if (size > this.client.limits.image) {
      throw new RegistryError('registry.too_large', `${this.reference.normalized} is ${formatBytes(size)} compressed; images over ${formatBytes(this.client.limits.image)} are not checked.`);
    }
    return {
      digest: top.digest,
      manifestDigest: manifest.digest,
      platform: formatPlatform(config.os ? actual : target),
      config,
      configDigest: configDescriptor.digest,
      layers,
      size,
    };
  }

  /** Streams a blob, verifying its size and digest as it passes; errors surface on the stream. */
  async openBlob(descriptor: Descriptor): Promise<Readable> {
    if (descriptor.size > this.client.limits.layer) {
      throw new RegistryError('registry.too_large', `A layer is ${formatBytes(descriptor.size)}; layers over ${formatBytes(this.client.limits.layer)} are not checked.`);
    }
    const response = await this.get(`blobs/${descriptor.digest}`, {});
    await this.expectOk(response, 'blob');
    const declared = Number(response.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > descriptor.size) {
      await response.body?.cancel();
      throw new RegistryError('registry.digest_mismatch', `A layer is larger than its manifest says (${declared} > ${descriptor.size} bytes).`);
    }
    if (!response.body) throw new RegistryError('registry.protocol', 'The registry sent an empty blob.');
    const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
    const verify = new VerifyingStream(descriptor.digest, descriptor.size);
    body.on('error', (cause) =>
      verify.destroy(
        new RegistryError('registry.unreachable', `The registry ${this.reference.registry} stopped sending a layer before its end (${String((cause as { code?: string }).code ?? cause)}).`, { cause }),
      ),
    );
    return body.pipe(verify);
  }

  private async readBlob(descriptor: Descriptor, limit: number): Promise<Buffer> {
    const response = await this.get(`blobs/${descriptor.digest}`, {});
    await this.expectOk(response, 'blob');
    const bytes = await readLimited(response, limit, 'The image config');
    verifyDigest(bytes, descriptor.digest);
    return bytes;
  }

  private async manifest(ref: string, expectedDigest: string | undefined): Promise<{ kind: 'index' | 'manifest'; digest: string; body: Record<string, unknown> }> {
    const response = await this.get(`manifests/${ref}`, { accept: ACCEPT });
    await this.expectOk(response, 'manifest');
    const declaredLength = Number(response.headers.get('content-length'));
    if (Number.isFinite(declaredLength) && declaredLength > this.client.limits.manifest) {
      await response.body?.cancel();
      throw new RegistryError('registry.too_large', `The manifest is ${declaredLength} bytes; at most ${this.client.limits.manifest} are read.`);
    }
    const bytes = await readLimited(response, this.client.limits.manifest, 'The manifest');
    const algorithm = (expectedDigest ?? response.headers.get('docker-content-digest') ?? 'sha256:').split(':')[0] ?? 'sha256';
    const computed = `${algorithm}:${createHash(algorithm === 'sha512' ? 'sha512' : 'sha256').update(bytes).digest('hex')}`;
    const claimed = expectedDigest ?? response.headers.get('docker-content-digest') ?? undefined;
    if (claimed && claimed !== computed) {
      throw new RegistryError(
        'registry.digest_mismatch',
        `The manifest the registry sent does not match its digest (${claimed}). The registry or something between us altered it.`,
        { detail: `computed ${computed}` },
      );
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    } catch (cause) {
      throw new RegistryError('registry.protocol', 'The manifest is not valid JSON.', { cause });
    }
    const mediaType = String(body.mediaType ?? response.headers.get('content-type')?.split(';')[0] ?? '');
    if (mediaType === MEDIA.dockerSchema1 || mediaType === MEDIA.dockerSchema1Signed || body.schemaVersion === 1) {
      throw new RegistryError('registry.unsupported', 'This image uses the old Docker schema 1 manifest; push it again with a current Docker or buildx.');
    }
    const isIndex = mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList || (mediaType === '' && Array.isArray(body.manifests));
    const isManifest = mediaType === MEDIA.ociManifest || mediaType === MEDIA.dockerManifest || (mediaType === '' && body.config !== undefined);
    if (!isIndex && !isManifest) throw new RegistryError('registry.unsupported', `The registry sent a manifest of type "${mediaType}", which is not an image.`);
    return { kind: isIndex ? 'index' : 'manifest', digest: computed, body };
  }

  /** GET/HEAD a path under /v2/<repository>/, authenticating on the first 401. */
  private async get(path: string, options: { method?: 'GET' | 'HEAD'; accept?: string }): Promise<Response> {
    const base = await this.baseUrl();
    const url = new URL(`/v2/${this.reference.repository}/${path}`, base);
    const send = () =>
      this.transport.request(url, {
        method: options.method ?? 'GET',
        headers: options.accept ? { Accept: options.accept } : {},
        authorization: this.authorization ? { host: base.host, value: this.authorization } : undefined,
        signal: this.signal,
      });
    let response = await send();
    if (response.status === 401) {
      const challenge = parseChallenges(response.headers.get('www-authenticate'))[0];
      await response.body?.cancel();
      if (challenge && (!this.authorization || challenge.params.error === 'insufficient_scope' || challenge.scheme !== this.challenge?.scheme)) {
        await this.authenticate(challenge);
        response = await send();
      }
    }
    return response;
  }

  /** Where the registry API is: https, or plain http for a trusted host that speaks no TLS. */
  private async baseUrl(): Promise<URL> {
    if (this.base) return this.base;
    const https = new URL(`https://${this.apiHost}/`);
    if (!this.trusted) {
      this.base = https;
      return https;
    }
    // As Docker does for insecure registries: try https, fall back to http.
    try {
      const probe = await this.transport.request(new URL('/v2/', https), { method: 'GET', signal: this.signal });
      await probe.body?.cancel();
      this.base = https;
    } catch (err) {
      if (!(err instanceof RegistryError) || (err.code !== 'registry.tls' && err.code !== 'registry.unreachable')) throw err;
      this.base = new URL(`http://${this.apiHost}/`);
    }
    return this.base;
  }

  private async authenticate(challenge: Challenge): Promise<void> {
    this.challenge = challenge;
    const base = await this.baseUrl();
    if (challenge.scheme === 'basic') {
      if (!this.credentials) {
        throw new RegistryError('registry.denied', `The registry ${this.reference.registry} needs a login for ${this.reference.repository}. Add the registry's username and password or token to this image.`);
      }
      this.authorization = `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
      // Basic credentials are checked by the ping: a 401 here is a wrong password.
      const ping = await this.transport.request(new URL('/v2/', base), { authorization: { host: base.host, value: this.authorization }, signal: this.signal });
      await ping.body?.cancel();
      if (ping.status === 401) throw wrongCredentials(this.reference.registry);
      return;
    }
    if (challenge.scheme !== 'bearer') {
      throw new RegistryError('registry.unsupported', `The registry ${this.reference.registry} asks for "${challenge.scheme}" authentication, which is not supported.`);
    }
    const realm = challenge.params.realm;
    if (!realm || !URL.canParse(realm)) throw new RegistryError('registry.protocol', `The registry ${this.reference.registry} named no valid token service.`);
    const realmUrl = new URL(realm);
    if (realmUrl.protocol !== 'https:' && realmUrl.protocol !== 'http:') throw new RegistryError('registry.protocol', 'The token service address is not http(s).');
    const scope = challenge.params.scope ?? `repository:${this.reference.repository}:pull`;
    if (challenge.params.service) realmUrl.searchParams.set('service', challenge.params.service);
    realmUrl.searchParams.set('scope', scope);

    // A user's password goes only to an https realm or to the registry's own host.
    const mayCarryCredentials = realmUrl.protocol === 'https:' || bareHost(realmUrl) === bareHost(base);
    const sendCredentials = this.credentials !== undefined && mayCarryCredentials;
    const cacheKey = `${realmUrl.href}|${sendCredentials ? `${this.credentials?.username}|${createHash('sha256').update(this.credentials?.password ?? '').digest('hex')}` : 'anonymous'}`;
    const cached = this.client.cachedToken(cacheKey);
    if (cached) {
      this.authorization = `Bearer ${cached}`;
      return;
    }
    const response = await this.transport.request(realmUrl, {
      headers: { Accept: 'application/json' },
      signal: this.signal,
      authorization: sendCredentials
        ? { host: realmUrl.host, value: `Basic ${Buffer.from(`${this.credentials?.username}:${this.credentials?.password}`).toString('base64')}` }
        : undefined,
    });
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      if (sendCredentials) throw wrongCredentials(this.reference.registry);
      throw new RegistryError('registry.denied', `The registry ${this.reference.registry} refused anonymous access to ${this.reference.repository}. If it is private, add its username and password or token.`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new RegistryError('registry.server_error', `The token service of ${this.reference.registry} answered HTTP ${response.status}.`);
    }
    const body = JSON.parse((await readLimited(response, MiB, 'The token')).toString('utf8')) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError('registry.protocol', `The token service of ${this.reference.registry} sent no token.`);
    this.client.storeToken(cacheKey, token, typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60);
    this.authorization = `Bearer ${token}`;
  }

  private async expectOk(response: Response, what: 'manifest' | 'blob'): Promise<void> {
    if (response.ok) return;
    let code = '';
    if (response.status !== 404 || what === 'manifest') {
      try {
        // Through the limited reader: an error answer is the registry's to make as long as it likes.
        const body = JSON.parse((await readLimited(response, ERROR_BODY_BYTES, 'An error answer')).toString('utf8')) as { errors?: Array<{ code?: string }> };
        code = body.errors?.[0]?.code ?? '';
      } catch {
        // not JSON, or too long to be one
      }
    } else {
      await response.body?.cancel();
    }
    const ref = this.reference;
    if (response.status === 404) {
      if (code === 'NAME_UNKNOWN') throw new RegistryError('registry.not_found', `The repository ${ref.registry}/${ref.repository} does not exist.`);
      throw new RegistryError(
        'registry.not_found',
        what === 'manifest'
          ? `${ref.registry}/${ref.repository} has no ${ref.digest ? `image with digest ${ref.digest}` : `tag "${ref.tag}"`}.`
          : `The registry lost a layer of ${ref.normalized} (blob not found).`,
      );
    }
    if (response.status === 401 || response.status === 403) {
      throw new RegistryError(
        'registry.denied',
        this.credentials
          ? `The login for ${ref.registry} works, but it has no access to ${ref.repository} (or that repository does not exist).`
          : `${ref.registry}/${ref.repository} is private or does not exist. If it is private, add the registry's username and password or token.`,
      );
    }
    throw new RegistryError('registry.protocol', `The registry ${ref.registry} answered HTTP ${response.status}${code ? ` (${code})` : ''} for the ${what}.`);
  }
}

function wrongCredentials(registry: string): RegistryError {
  return new RegistryError('registry.unauthorized', `The registry ${registry} refused the username and password (or token). Check them and save them again.`);
}

/** Reads a body up to `limit` bytes. */
async function readLimited(response: Response, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (!response.body) return Buffer.alloc(0);
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > limit) {
      await response.body.cancel().catch(() => undefined);
      throw new RegistryError('registry.too_large', `${what} is larger than ${formatBytes(limit)}.`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

function verifyDigest(bytes: Buffer, digest: string): void {
  const [algorithm = '', hex] = digest.split(':');
  if (algorithm !== 'sha256' && algorithm !== 'sha512') throw new RegistryError('registry.unsupported', `Unsupported digest algorithm ${algorithm}.`);
  if (createHash(algorithm).update(bytes).digest('hex') !== hex) {
    throw new RegistryError('registry.digest_mismatch', `A blob the registry sent does not match its digest ${digest}.`);
  }
}

/** Passes bytes through, failing when they exceed the declared size or miss the digest. */
class VerifyingStream extends Transform {
  private readonly hash;
  private readonly hex: string;
  private seen = 0;

  constructor(
    private readonly digest: string,
    private readonly size: number,
  ) {
    super();
    const [algorithm = 'sha256', hex = ''] = digest.split(':');
    this.hash = createHash(algorithm === 'sha512' ? 'sha512' : 'sha256');
    this.hex = hex;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.size) {
      callback(new RegistryError('registry.digest_mismatch', `A layer is larger than its manifest says (${this.size} bytes).`));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.hash.digest('hex') !== this.hex) {
      callback(new RegistryError('registry.digest_mismatch', `A layer the registry sent does not match its digest ${this.digest}.`));
      return;
    }
    callback();
  }
}

/** 1.5 GB, 300 MB, 12 kB. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}
