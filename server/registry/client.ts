/**
 * An OCI distribution client: a session per repository resolves a reference
 * to one platform's manifest, config and layers, and streams its blobs with
 * size limits. The parts are modules of their own: the HTTP transport and
 * its address guard (transport.ts, guard.ts), answering a challenge
 * (auth.ts), reading a manifest (manifest.ts), checking digests (digest.ts),
 * what is remembered between sessions (caches.ts).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Response } from 'undici';
import { formatBytes } from '../format.js';
import { answerChallenge } from './auth.js';
import { DigestCache, TokenCache } from './caches.js';
import { parseChallenges, type Challenge } from './challenge.js';
import { readLimited, verifyDigest, VerifyingStream } from './digest.js';
import { RegistryError } from './errors.js';
import { assertPublicHost, bareHost, type AddressPolicy } from './guard.js';
import { parseManifest, type ParsedManifest } from './manifest.js';
import { ACCEPT_MANIFESTS, MEDIA, type Descriptor, type ImageConfig, type RegistryCredentials, type ResolvedImage } from './media.js';
import { formatPlatform, normalizePlatform, offeredPlatforms, selectPlatform, type Platform } from './platform.js';
import { registryApiHost, type ImageReference } from './reference.js';
import { RegistryTransport } from './transport.js';

export type { Descriptor, ImageConfig, RegistryCredentials, ResolvedImage };

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

/** A registry as image references name it, for comparing: lower case, without the https default port. */
function registryKey(hostPort: string): string {
  return hostPort.trim().toLowerCase().replace(/:443$/, '');
}

/** A digest as the OCI image specification registers them, before it goes into a URL path. */
function assertDigest(digest: unknown): asserts digest is string {
  if (typeof digest !== 'string' || !/^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/.test(digest)) {
    throw new RegistryError('registry.protocol', `"${String(digest).slice(0, 80)}" is not a sha256 or sha512 digest.`);
  }
}

/** The registry client; one per service, shared by all checks (it holds the token cache). */
export class RegistryClient {
  readonly limits: { manifest: number; config: number; layer: number; image: number };
  private readonly trusted: ReadonlySet<string>;
  /** For registries on public addresses only, and the one for registries an admin trusts. */
  private readonly publicOnly: RegistryTransport;
  private readonly anyAddress: RegistryTransport;
  /** Bearer tokens, shared by sessions until they expire. */
  readonly tokens: TokenCache;
  /** A tag's digest from a HEAD, taken as current for a few seconds (launches ask often). */
  readonly digests: DigestCache;

  constructor(options: RegistryClientOptions = {}) {
    this.trusted = new Set([...(options.trustedHosts ?? [])].map(registryKey));
    this.limits = {
      manifest: options.maxManifestBytes ?? 4 * MiB,
      config: options.maxConfigBytes ?? 16 * MiB,
      layer: options.maxLayerBytes ?? 16 * 1024 * MiB,
      image: options.maxImageBytes ?? 32 * 1024 * MiB,
    };
    const now = options.now ?? Date.now;
    this.tokens = new TokenCache(now);
    this.digests = new DigestCache(options.digestTtlMs ?? 10_000, now);
    const transport = (policy: AddressPolicy) =>
      new RegistryTransport({
        policy,
        timeouts: {
          connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
          headersTimeoutMs: options.headersTimeoutMs ?? 30_000,
          bodyTimeoutMs: options.bodyTimeoutMs ?? 60_000,
        },
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
      const response = await this.get(`manifests/${ref}`, { method: 'HEAD', accept: ACCEPT_MANIFESTS });
      await this.expectOk(response, 'manifest');
      return response.headers.get('docker-content-digest') ?? undefined;
    };
    // A fresh answer (a check) is not shared: only launches reuse each other's answers, per credentials.
    if (options.fresh) return ask();
    const who = this.credentials
      ? `${this.credentials.username}:${createHash('sha256').update(this.credentials.password).digest('hex')}`
      : '';
    return this.client.digests.get(`${this.reference.registry}/${this.reference.repository}:${ref}|${who}`, ask);
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
      if (manifest.kind !== 'manifest')
        throw new RegistryError('registry.unsupported', 'An image index points to another index; nested indexes are not supported.');
    }
    const configDescriptor = manifest.body.config as Descriptor | undefined;
    const layers = (manifest.body.layers ?? []) as Descriptor[];
    if (!configDescriptor?.digest || !Array.isArray(layers)) {
      throw new RegistryError('registry.protocol', `The manifest of ${this.reference.normalized} has no config or layers.`);
    }
    if (!Number.isSafeInteger(configDescriptor.size) || configDescriptor.size <= 0) {
      throw new RegistryError(
        'registry.protocol',
        `The manifest of ${this.reference.normalized} gives its config no size; a valid manifest states it in bytes.`,
      );
    }
    if (configDescriptor.size > this.client.limits.config) {
      throw new RegistryError(
        'registry.too_large',
        `The image config is ${configDescriptor.size} bytes; at most ${this.client.limits.config} are read.`,
      );
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
    if (
      top.kind === 'manifest' &&
      config.os &&
      config.architecture &&
      (actual.os !== target.os || actual.architecture !== target.architecture)
    ) {
      throw new RegistryError(
        'platform.missing',
        `${this.reference.normalized} is built for ${formatPlatform(actual)} only; this system runs ${formatPlatform(target)}.`,
      );
    }
    for (const layer of layers) {
      // Every limit counts sizes: a layer without a positive one would switch them off.
      if (!Number.isSafeInteger(layer.size) || layer.size <= 0) {
        throw new RegistryError(
          'registry.protocol',
          `The manifest of ${this.reference.normalized} gives a layer (${String(layer.digest).slice(0, 19)}) no size; a valid manifest states every layer's size in bytes.`,
        );
      }
    }
    const size = layers.reduce((sum, l) => sum + l.size, 0);
    for (const layer of layers) {
      if (layer.size > this.client.limits.layer) {
        throw new RegistryError(
          'registry.too_large',
          `A layer of ${this.reference.normalized} is ${formatBytes(layer.size)}; layers over ${formatBytes(this.client.limits.layer)} are not checked.`,
        );
      }
    }
    if (size > this.client.limits.image) {
      throw new RegistryError(
        'registry.too_large',
        `${this.reference.normalized} is ${formatBytes(size)} compressed; images over ${formatBytes(this.client.limits.image)} are not checked.`,
      );
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

  /**
   * The configs of every image the reference offers: each platform's of an
   * index (an attestation or other non-image entry skipped), or the one of a
   * single manifest. For what the engine may take from an image whichever
   * platform it picks, such as its build triggers. At most `maxImages`.
   */
  async imageConfigs(maxImages = 64): Promise<{ digest: string; configs: Array<{ platform: string; config: ImageConfig }> }> {
    const ref = this.reference.digest ?? this.reference.tag ?? 'latest';
    const top = await this.manifest(ref, this.reference.digest);
    const images: Array<{ manifest: ParsedManifest; platform: string }> = [];
    if (top.kind === 'index') {
      const entries = ((top.body.manifests ?? []) as Descriptor[]).filter(
        (d) => (d.mediaType === MEDIA.ociManifest || d.mediaType === MEDIA.dockerManifest) && d.platform?.os !== 'unknown',
      );
      if (entries.length > maxImages) {
        throw new RegistryError(
          'registry.too_large',
          `${this.reference.normalized} offers ${entries.length} images; at most ${maxImages} are read.`,
        );
      }
      for (const entry of entries) {
        images.push({
          manifest: await this.manifest(entry.digest, entry.digest),
          platform: formatPlatform(
            normalizePlatform({
              os: entry.platform?.os ?? '',
              architecture: entry.platform?.architecture ?? '',
              variant: entry.platform?.variant,
            }),
          ),
        });
      }
    } else {
      images.push({ manifest: top, platform: '' });
    }
    const configs: Array<{ platform: string; config: ImageConfig }> = [];
    for (const { manifest, platform } of images) {
      if (manifest.kind !== 'manifest')
        throw new RegistryError('registry.unsupported', 'An image index points to another index; nested indexes are not supported.');
      const descriptor = manifest.body.config as Descriptor | undefined;
      if (!descriptor?.digest || !Number.isSafeInteger(descriptor.size) || descriptor.size <= 0)
        throw new RegistryError('registry.protocol', `The manifest of ${this.reference.normalized} has no config of a stated size.`);
      if (descriptor.size > this.client.limits.config) {
        throw new RegistryError(
          'registry.too_large',
          `The image config is ${descriptor.size} bytes; at most ${this.client.limits.config} are read.`,
        );
      }
      const bytes = await this.readBlob(descriptor, this.client.limits.config);
      try {
        configs.push({ platform, config: JSON.parse(bytes.toString('utf8')) as ImageConfig });
      } catch (cause) {
        throw new RegistryError('registry.protocol', 'The image config is not valid JSON.', { cause });
      }
    }
    return { digest: top.digest, configs };
  }

  /**
   * The blobs manifest `digest` references (for an index: those of each of
   * its manifests), config and layers, with the sizes it states: what it
   * takes in the registry. Blobs that several manifests share are listed once.
   */
  async manifestBlobs(digest: string, maxManifests = 64): Promise<Array<{ digest: string; size: number }>> {
    assertDigest(digest);
    const top = await this.manifest(digest, digest);
    const manifests: ParsedManifest[] = [];
    if (top.kind === 'index') {
      const entries = (top.body.manifests ?? []) as Descriptor[];
      if (!Array.isArray(entries) || entries.length > maxManifests) {
        throw new RegistryError('registry.too_large', `The index ${digest} lists more than ${maxManifests} manifests.`);
      }
      for (const entry of entries) {
        assertDigest(entry.digest);
        const child = await this.manifest(entry.digest, entry.digest);
        if (child.kind === 'manifest') manifests.push(child);
      }
    } else {
      manifests.push(top);
    }
    const blobs = new Map<string, number>();
    for (const manifest of manifests) {
      const config = manifest.body.config as Descriptor | undefined;
      const layers = (manifest.body.layers ?? []) as Descriptor[];
      for (const blob of [...(config ? [config] : []), ...(Array.isArray(layers) ? layers : [])]) {
        if (typeof blob.digest !== 'string' || !Number.isSafeInteger(blob.size) || blob.size < 0) {
          throw new RegistryError('registry.protocol', `The manifest ${manifest.digest} states a blob without a digest or size.`);
        }
        blobs.set(blob.digest, blob.size);
      }
    }
    return [...blobs].map(([blob, size]) => ({ digest: blob, size }));
  }

  /** Whether the registry serves manifest `digest` of this repository (a HEAD). */
  async hasManifest(digest: string): Promise<boolean> {
    assertDigest(digest);
    const response = await this.get(`manifests/${digest}`, { method: 'HEAD', accept: ACCEPT_MANIFESTS });
    if (response.status === 404) {
      await response.body?.cancel();
      return false;
    }
    await this.expectOk(response, 'manifest');
    await response.body?.cancel();
    return true;
  }

  /**
   * Deletes manifest `digest` (DELETE /v2/<name>/manifests/<digest>): the
   * registry no longer serves it, by digest or by the tags that named it;
   * its blobs go at the registry's next garbage collection. `missing` when
   * the registry has no such manifest (deleted before, or never there):
   * the end a delete asks for, so it counts as done.
   */
  async deleteManifest(digest: string): Promise<'deleted' | 'missing'> {
    assertDigest(digest);
    const response = await this.get(`manifests/${digest}`, { method: 'DELETE' });
    if (response.status === 200 || response.status === 202 || response.status === 204) {
      await response.body?.cancel();
      return 'deleted';
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return 'missing';
    }
    if (response.status === 405) {
      await response.body?.cancel();
      throw new RegistryError(
        'registry.unsupported',
        `The registry ${this.reference.registry} does not allow deleting manifests (405): its configuration needs storage.delete.enabled: true.`,
      );
    }
    await this.expectOk(response, 'manifest');
    throw new RegistryError('registry.protocol', `The registry ${this.reference.registry} answered HTTP ${response.status} to a delete.`);
  }

  /** Streams a blob, verifying its size and digest as it passes; errors surface on the stream. */
  async openBlob(descriptor: Descriptor): Promise<Readable> {
    if (descriptor.size > this.client.limits.layer) {
      throw new RegistryError(
        'registry.too_large',
        `A layer is ${formatBytes(descriptor.size)}; layers over ${formatBytes(this.client.limits.layer)} are not checked.`,
      );
    }
    const response = await this.get(`blobs/${descriptor.digest}`, {});
    await this.expectOk(response, 'blob');
    const declared = Number(response.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > descriptor.size) {
      await response.body?.cancel();
      throw new RegistryError(
        'registry.digest_mismatch',
        `A layer is larger than its manifest says (${declared} > ${descriptor.size} bytes).`,
      );
    }
    if (!response.body) throw new RegistryError('registry.protocol', 'The registry sent an empty blob.');
    const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
    const verify = new VerifyingStream(descriptor.digest, descriptor.size);
    body.on('error', (cause) =>
      verify.destroy(
        new RegistryError(
          'registry.unreachable',
          `The registry ${this.reference.registry} stopped sending a layer before its end (${String((cause as { code?: string }).code ?? cause)}).`,
          { cause },
        ),
      ),
    );
    return body.pipe(verify);
  }

  private async readBlob(descriptor: Descriptor, limit: number): Promise<Buffer> {
    const response = await this.get(`blobs/${descriptor.digest}`, {});
    await this.expectOk(response, 'blob');
    const bytes = await readLimited(response, limit, 'The image config');
    verifyDigest(bytes, descriptor.digest, 'The image config');
    return bytes;
  }

  private async manifest(ref: string, expectedDigest: string | undefined): Promise<ParsedManifest> {
    const response = await this.get(`manifests/${ref}`, { accept: ACCEPT_MANIFESTS });
    await this.expectOk(response, 'manifest');
    const declaredLength = Number(response.headers.get('content-length'));
    if (Number.isFinite(declaredLength) && declaredLength > this.client.limits.manifest) {
      await response.body?.cancel();
      throw new RegistryError(
        'registry.too_large',
        `The manifest is ${declaredLength} bytes; at most ${this.client.limits.manifest} are read.`,
      );
    }
    const bytes = await readLimited(response, this.client.limits.manifest, 'The manifest');
    return parseManifest(
      bytes,
      expectedDigest ?? response.headers.get('docker-content-digest') ?? undefined,
      response.headers.get('content-type') ?? undefined,
    );
  }

  /** GET/HEAD (or DELETE) a path under /v2/<repository>/, authenticating on the first 401. */
  private async get(path: string, options: { method?: 'GET' | 'HEAD' | 'DELETE'; accept?: string }): Promise<Response> {
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
      if (
        challenge &&
        (!this.authorization || challenge.params.error === 'insufficient_scope' || challenge.scheme !== this.challenge?.scheme)
      ) {
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
    this.authorization = await answerChallenge(challenge, {
      transport: this.transport,
      base: await this.baseUrl(),
      reference: this.reference,
      credentials: this.credentials,
      tokens: this.client.tokens,
      signal: this.signal,
    });
  }

  private async expectOk(response: Response, what: 'manifest' | 'blob'): Promise<void> {
    if (response.ok) return;
    let code = '';
    if (response.status !== 404 || what === 'manifest') {
      try {
        // Through the limited reader: an error answer is the registry's to make as long as it likes.
        const body = JSON.parse((await readLimited(response, ERROR_BODY_BYTES, 'An error answer')).toString('utf8')) as {
          errors?: Array<{ code?: string }>;
        };
        code = body.errors?.[0]?.code ?? '';
      } catch {
        // not JSON, or too long to be one
      }
    } else {
      await response.body?.cancel();
    }
    const ref = this.reference;
    if (response.status === 404) {
      if (code === 'NAME_UNKNOWN')
        throw new RegistryError('registry.not_found', `The repository ${ref.registry}/${ref.repository} does not exist.`);
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
    throw new RegistryError(
      'registry.protocol',
      `The registry ${ref.registry} answered HTTP ${response.status}${code ? ` (${code})` : ''} for the ${what}.`,
    );
  }
}
