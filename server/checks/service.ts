/**
 * Checks of a user's saved images: the same digest and policy are checked
 * once (the registry is asked for the digest with a HEAD first), results are
 * stored with their findings and log.
 */
import { createHash } from 'node:crypto';
import { AppError, notFound } from '../errors.js';
import type { HubClient } from '../hub/client.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageService } from '../images/service.js';
import type { RegistryClient } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { parseReference } from '../registry/reference.js';
import { registryAllowed, type ImagePolicy, type SystemCatalog } from '../systems/schema.js';
import type { LayerIndexCache } from './layerCache.js';
import { registryFinding, runStaticCheck, type CheckProgress } from './staticCheck.js';
import type { CheckRow, CheckStore } from './store.js';

/** A stable key for "the same policy on the same platform". */
export function policyHash(policy: ImagePolicy, platform: string): string {
  const canonical = JSON.stringify({
    platform,
    requireUid1000: policy.requireUid1000,
    requirePip: policy.requirePip,
    python: { min: policy.python?.min ?? null, max: policy.python?.max ?? null },
  });
  return createHash('sha256').update(canonical).digest('hex');
}

export interface CheckServiceDeps {
  store: CheckStore;
  images: ImageService;
  systems: SystemCatalog;
  registry: RegistryClient;
  layers: LayerIndexCache;
  hub: HubClient;
  now?: () => Date;
}

const HUB_VERSION_TTL_MS = 3600_000;

export class CheckService {
  private hubVersion: { value: string | undefined; at: number } | undefined;
  private readonly now: () => Date;

  constructor(private readonly deps: CheckServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** Checks a saved image now and stores the result; a known digest is answered from the stored result. */
  async checkImage(actor: HubIdentity, owner: string, imageId: number, onProgress?: (p: CheckProgress) => void): Promise<CheckRow> {
    void actor;
    const image = await this.deps.images.get(owner, imageId);
    const system = await this.deps.systems.get(image.system.slug);
    if (!system) throw new AppError(409, 'conflict', `The system "${image.system.slug}" of this image no longer exists; choose another system.`);
    const reference = parseReference(image.reference);
    const credentials = await this.deps.images.pullCredentials(owner, imageId, reference);
    const hash = policyHash(system.policy, system.platform);
    const started = this.now();
    const base = {
      imageId,
      owner,
      system: system.slug,
      reference: image.reference,
      platform: system.platform,
      policyHash: hash,
      kind: 'static' as const,
      progress: null,
      createdAt: started,
      startedAt: started,
    };

    // The system's registry patterns may have changed since the image was saved.
    if (!registryAllowed(system.allowedRegistries, reference.registry, reference.repository)) {
      return this.save({
        ...base,
        digest: null,
        manifestDigest: null,
        status: 'failed',
        findings: [{ code: 'registry.not_allowed', level: 'error', message: `${system.displayName} does not offer images from ${reference.registry}/${reference.repository}; allowed: ${system.allowedRegistries.join(', ')}.` }],
        facts: null,
        log: 'The registry is not allowed on this system; it was not contacted.\n',
        reusedFrom: null,
        finishedAt: this.now(),
        durationMs: 0,
      });
    }

    // HEAD first: a digest checked before is not downloaded again.
    let digest: string | undefined;
    try {
      digest = await this.deps.registry.session(reference, credentials).headDigest();
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      const { verdict, finding } = registryFinding(err);
      return this.save({
        ...base,
        digest: null,
        manifestDigest: null,
        status: verdict === 'fail' ? 'failed' : 'error',
        findings: [finding],
        facts: null,
        log: `Asking ${reference.registry} for ${reference.normalized}\nRegistry: ${err.message}\n`,
        reusedFrom: null,
        finishedAt: this.now(),
        durationMs: this.now().getTime() - started.getTime(),
      });
    }
    if (digest) {
      const previous = await this.deps.store.reusable(digest, system.platform, hash, 'static');
      if (previous) {
        return this.save({
          ...base,
          digest: previous.digest,
          manifestDigest: previous.manifestDigest,
          status: previous.status,
          findings: previous.findings,
          facts: previous.facts,
          log: `${reference.normalized} is ${digest}, checked before (check #${previous.id}) with the same policy: result reused.\n${previous.log}`,
          reusedFrom: previous.reusedFrom ?? previous.id,
          finishedAt: this.now(),
          durationMs: this.now().getTime() - started.getTime(),
        });
      }
    }

    const lines: string[] = [];
    const result = await runStaticCheck(
      { registry: this.deps.registry, layers: this.deps.layers },
      {
        reference,
        platform: system.platform,
        policy: system.policy,
        credentials,
        hubVersion: await this.hubVersionCached(),
        ...(onProgress ? { onProgress } : {}),
        log: (line) => lines.push(line),
      },
    );
    return this.save({
      ...base,
      digest: result.digest ?? null,
      manifestDigest: result.manifestDigest ?? null,
      platform: result.platform,
      status: result.verdict === 'pass' ? 'passed' : result.verdict === 'fail' ? 'failed' : 'error',
      findings: result.findings,
      facts: result.facts ?? null,
      log: `${lines.join('\n')}\n`,
      reusedFrom: null,
      finishedAt: this.now(),
      durationMs: result.durationMs,
    });
  }

  /** A check of one of `owner`'s images. */
  async get(owner: string, checkId: number): Promise<CheckRow> {
    const check = await this.deps.store.get(checkId);
    if (!check || check.owner !== owner) throw notFound('Check');
    return check;
  }

  /** Any check by id, for callers authorised per owner by the web layer. */
  async getAny(checkId: number): Promise<CheckRow | undefined> {
    return this.deps.store.get(checkId);
  }

  async history(owner: string, imageId: number): Promise<CheckRow[]> {
    await this.deps.images.get(owner, imageId);
    return this.deps.store.forImage(owner, imageId);
  }

  private async save(check: Omit<CheckRow, 'id'>): Promise<CheckRow> {
    const id = await this.deps.store.insert(check);
    return { ...check, id };
  }

  /** The hub's version, asked once an hour; unknown if the hub does not say. */
  private async hubVersionCached(): Promise<string | undefined> {
    const now = Date.now();
    if (this.hubVersion && now - this.hubVersion.at < HUB_VERSION_TTL_MS) return this.hubVersion.value;
    let value: string | undefined;
    try {
      value = await this.deps.hub.version();
    } catch {
      value = undefined;
    }
    this.hubVersion = { value, at: now };
    return value;
  }
}
