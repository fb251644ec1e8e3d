/**
 * Check jobs of users' saved images. A request queues a job; a worker
 * (checks/worker.ts) runs it: the registry is asked for the digest with a
 * HEAD first, a stored result for the same digest and policy is reused,
 * otherwise the image is read (the static check) and, when a Docker engine is
 * configured, started (the run check). Progress and log are stored as the job
 * goes, so that any replica can show them.
 */
import { createHash } from 'node:crypto';
import { AppError, notFound, tooManyRequests } from '../errors.js';
import type { HubClient } from '../hub/client.js';
import type { HubIdentity } from '../hub/identity.js';
import type { Finding } from '../inspect/analyze.js';
import type { ImageService } from '../images/service.js';
import type { RegistryClient } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { parseReference, registryAuthKey } from '../registry/reference.js';
import type { PullService } from '../pulls/service.js';
import type { Keyring } from '../secrets/keyring.js';
import type { DockerEngine } from '../runner/engine.js';
import { CHECK_ID_LABEL, CHECK_LABEL, DEPLOYMENT_LABEL, runCheck, type RunLimits } from '../runner/runCheck.js';
import { runAsFor } from '../systems/runAs.js';
import { DEFAULT_GID, DEFAULT_UID, registryAllowed, type ImagePolicy, type SystemCatalog } from '../systems/schema.js';
import type { LayerIndexCache } from './layerCache.js';
import { CheckRecorder } from './recorder.js';
import { registryFinding, runStaticCheck } from './staticCheck.js';
import { PUBLIC_ACCESS, type CheckRow, type CheckStatus, type CheckStore } from './store.js';

// A site has a handful of policies, and every launch compares one: hash each once.
const policyHashes = new Map<string, string>();

/** A stable key for "the same policy on the same platform". */
export function policyHash(policy: ImagePolicy, platform: string): string {
  const runsAsDefault = policy.uid === DEFAULT_UID && policy.uidMax === undefined && policy.gid === DEFAULT_GID;
  const canonical = JSON.stringify({
    platform,
    // Named and shaped as before the uid became a setting, so that checks stored then stay valid.
    requireUid1000: policy.requireUser,
    requirePip: policy.requirePip,
    python: { min: policy.python?.min ?? null, max: policy.python?.max ?? null },
    ...(runsAsDefault ? {} : { runAs: [policy.uid, policy.uidMax ?? null, policy.gid] }),
  });
  let hash = policyHashes.get(canonical);
  if (hash === undefined) {
    hash = createHash('sha256').update(canonical).digest('hex');
    if (policyHashes.size >= 1000) policyHashes.clear();
    policyHashes.set(canonical, hash);
  }
  return hash;
}

export interface CheckServiceDeps {
  store: CheckStore;
  images: ImageService;
  systems: SystemCatalog;
  registry: RegistryClient;
  layers: LayerIndexCache;
  hub: HubClient;
  /** Undefined when no Docker engine is configured: the run check is skipped. */
  engine?: DockerEngine | undefined;
  runLimits: RunLimits;
  /** How long the run check's pull may take. */
  pullTimeoutMs?: number | undefined;
  /** How long a whole check may take. */
  deadlineMs: number;
  /** Checks one user may have queued or running at once. */
  maxQueuedPerUser: number;
  /** Fingerprints credentials, so that results are reused only with the same one. */
  keyring: Pick<Keyring, 'fingerprint'>;
  /** Progress streams one user may have open at once on this replica. */
  maxStreamsPerUser: number;
  /** Keep images pulled for a run check on the host even when no launch will use them. */
  keepPulledImages: boolean;
  /** Keeps passed images in the engine for launches on Docker systems; undefined without an engine. */
  pulls?: PullService | undefined;
  now?: () => Date;
}

const HUB_VERSION_TTL_MS = 3600_000;

/** How often a followed check is read again, and for how long at most. */
const FOLLOW_EVERY_MS = 500;
const FOLLOW_AT_MOST_MS = 15 * 60_000;

/** A check that has not ended yet. */
export function isActive(status: CheckStatus): boolean {
  return status === 'queued' || status === 'running';
}

export class CheckService {
  private hubVersion: { value: string | undefined; at: number } | undefined;
  /** Open progress streams per user, on this replica. */
  private readonly streams = new Map<string, number>();
  private readonly now: () => Date;

  constructor(private readonly deps: CheckServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** Whether checks also start the image in Docker. */
  get runsImages(): boolean {
    return this.deps.engine !== undefined;
  }

  /** Queues a check of a saved image; the returned job is followed with {@link get}. */
  async request(actor: HubIdentity, owner: string, imageId: number): Promise<CheckRow> {
    void actor;
    const image = await this.deps.images.get(owner, imageId);
    // One user cannot fill the queue for everyone.
    const active = await this.deps.store.activeFor(owner);
    if (active >= this.deps.maxQueuedPerUser) {
      throw tooManyRequests(`${owner} has ${active} checks waiting or running already (at most ${this.deps.maxQueuedPerUser}). Start another one when one of them is done.`, 30);
    }
    const system = await this.deps.systems.get(image.system.slug);
    if (!system) throw new AppError(409, 'conflict', `The system "${image.system.slug}" of this image no longer exists; choose another system.`);
    const check: Omit<CheckRow, 'id'> = {
      imageId,
      owner,
      system: system.slug,
      reference: image.reference,
      digest: null,
      manifestDigest: null,
      platform: system.platform,
      policyHash: policyHash(system.policy, system.platform),
      repository: null,
      access: null,
      kind: this.runsImages ? 'full' : 'static',
      status: 'queued',
      findings: [],
      facts: null,
      log: '',
      progress: { phase: 'resolve', message: 'Waiting for a free worker', layersDone: 0, layersTotal: 0, bytesRead: 0, bytesTotal: 0 },
      reusedFrom: null,
      createdAt: this.now(),
      startedAt: null,
      finishedAt: null,
      durationMs: null,
      runner: null,
      heartbeatAt: null,
      attempts: 0,
    };
    const id = await this.deps.store.insert(check);
    return { ...check, id };
  }

  /**
   * Runs a claimed job to its end and stores the result; engine or registry
   * failures end in `error`. A check that outlives its deadline ends in
   * `error` then, its registry requests and container stopped: a registry
   * that sends a byte every few seconds holds no worker for ever.
   */
  async execute(job: CheckRow): Promise<CheckStatus> {
    const record = new CheckRecorder(this.deps.store, job, this.now);
    const deadline = new AbortController();
    const seconds = Math.round(this.deps.deadlineMs / 1000);
    let timer: NodeJS.Timeout | undefined;
    const stopped = new Promise<CheckStatus>((resolve) => {
      timer = setTimeout(() => {
        deadline.abort();
        record.log(`Stopped: the check took longer than ${seconds} s.`);
        resolve(
          record.finish('error', [
            {
              code: 'check.deadline',
              level: 'error',
              message: `The check took longer than ${seconds >= 120 ? `${Math.round(seconds / 60)} minutes` : `${seconds} seconds`} and was stopped. The registry may be very slow at the moment; try again later.`,
            },
          ], { kind: 'static' }),
        );
      }, this.deps.deadlineMs);
    });
    try {
      return await Promise.race([this.run(job, record, deadline.signal), stopped]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async run(job: CheckRow, record: CheckRecorder, signal: AbortSignal): Promise<CheckStatus> {
    const { log } = record;
    // The kind is what ran here, not what was asked: a replica without an engine makes a static check.
    const finish = (status: CheckStatus, findings: Finding[], extra: Partial<CheckRow> = {}) => record.finish(status, findings, { kind: 'static', ...extra });
    try {
      const system = await this.deps.systems.get(job.system);
      if (!system) return await finish('error', [{ code: 'system.missing', level: 'error', message: `The system ${job.system} no longer exists.` }]);
      const reference = parseReference(job.reference);
      // The system's registry patterns may have changed since the image was saved.
      if (!registryAllowed(system.allowedRegistries, reference.registry, reference.repository)) {
        log('The registry is not allowed on this system; it was not contacted.');
        return await finish('failed', [
          { code: 'registry.not_allowed', level: 'error', message: `${system.displayName} does not offer images from ${reference.registry}/${reference.repository}; allowed: ${system.allowedRegistries.join(', ')}.` },
        ]);
      }
      const credentials = job.imageId === null ? undefined : await this.deps.images.pullCredentials(job.owner, job.imageId, reference);
      const repository = `${reference.registry}/${reference.repository}`;
      // Which credential read it, never the credential itself: who may reuse this result.
      const access = credentials ? `credential:${this.deps.keyring.fingerprint(`${reference.registry}\u0000${credentials.username}\u0000${credentials.password}`)}` : PUBLIC_ACCESS;
      const scope = { repository, access };
      // Once passed, an image on a Docker system is pulled into the engine for a fast start.
      const passed = async (findings: Finding[], stored: Partial<CheckRow>, pulledByRun?: boolean) => {
        const digest = stored.manifestDigest ?? stored.digest;
        if (job.imageId !== null && digest && system.spawner === 'docker' && this.deps.pulls) {
          const target = { owner: job.owner, imageId: job.imageId, reference, digest };
          const pulls = this.deps.pulls;
          await (pulledByRun === undefined ? pulls.request(target) : pulls.present(target, pulledByRun)).catch((err: unknown) => {
            log(`Could not prepare the image for a fast start (${err instanceof Error ? err.message : String(err)}); Start will pull it.`);
          });
        }
        return finish('passed', findings, stored);
      };

      // HEAD first: a digest checked before is not downloaded again.
      log(`Asking ${reference.registry} for ${reference.normalized}`);
      record.report({ phase: 'resolve', message: `Asking ${reference.registry} for ${reference.normalized}` });
      let digest: string | undefined;
      try {
        digest = await this.deps.registry.session(reference, credentials, signal).headDigest({ fresh: true });
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
        const { verdict, finding } = registryFinding(err);
        log(`Registry: ${err.message}`);
        return await finish(verdict === 'fail' ? 'failed' : 'error', [finding]);
      }
      if (digest) {
        const previous = await this.deps.store.reusable({ digest, platform: system.platform, policyHash: job.policyHash, kind: job.kind, ...scope });
        if (previous) {
          // Its findings, never its log: that is another check's (perhaps another user's) output.
          log(`${reference.normalized} is ${digest}, checked before with the same policy and access: the result is reused.`);
          const stored = { digest: previous.digest, manifestDigest: previous.manifestDigest, facts: previous.facts, kind: previous.kind, reusedFrom: previous.reusedFrom ?? previous.id, ...scope };
          if (previous.status === 'passed') return await passed(previous.findings, stored);
          return await finish(previous.status, previous.findings, stored);
        }
      }

      const result = await runStaticCheck(
        { registry: this.deps.registry, layers: this.deps.layers },
        { reference, platform: system.platform, policy: system.policy, credentials, access, hubVersion: await this.hubVersionCached(), onProgress: record.report, log, signal },
      );
      const findings = [...result.findings];
      const stored = { digest: result.digest ?? null, manifestDigest: result.manifestDigest ?? null, platform: result.platform, facts: result.facts ?? null, ...scope };
      if (result.verdict !== 'pass') return await finish(result.verdict === 'fail' ? 'failed' : 'error', findings, stored);

      const engine = this.deps.engine;
      if (job.kind === 'static' || !engine) {
        findings.push({ code: 'run.skipped', level: 'info', message: 'No Docker engine is configured here, so the image was not started; the check read it from its registry only.' });
        return await passed(findings, stored);
      }

      // The run check: start the image as the spawner would, as the user the server will run as.
      const pinned = `${reference.registry}/${reference.repository}@${result.manifestDigest ?? result.digest}`;
      const runAs = runAsFor(system.policy, result.facts);
      record.report({ phase: 'layers', message: `Pulling ${pinned}` });
      let run;
      try {
        // The engine connects by itself: the registry's address is held to the same rule first.
        await this.deps.registry.assertEngineMayPull(reference.registry);
        run = await runCheck(engine, {
          image: pinned,
          auth: credentials ? { ...credentials, serveraddress: registryAuthKey(reference.registry) } : undefined,
          user: `${runAs.uid}:${runAs.gid}`,
          limits: this.deps.runLimits,
          pullTimeoutMs: this.deps.pullTimeoutMs,
          signal,
          labels: { [CHECK_ID_LABEL]: String(job.id), [DEPLOYMENT_LABEL]: await this.deps.store.deploymentId() },
          onPull: (p) => record.report({ message: `Pulling: ${p.status}`, pulledBytes: p.current, pullTotal: p.total }),
          log,
        });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log(`Docker: ${message}`);
        findings.push({ code: 'run.engine', level: 'error', message: `The image could not be started for the run check: ${message}` });
        return await finish('error', findings, stored);
      }
      findings.push(...run.findings);
      const ran = { ...stored, kind: 'full' as const };
      const failed = run.findings.some((f) => f.level === 'error');
      // A passing image the spawner will start stays in the engine for it; others go unless the admin keeps them.
      const keep = !failed && system.spawner === 'docker' && this.deps.pulls !== undefined;
      if (run.pulled && !keep && !this.deps.keepPulledImages) await engine.removeImage(pinned).catch(() => undefined);
      if (failed) return await finish('failed', findings, ran);
      return await passed(findings, ran, run.pulled);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log(`Unexpected: ${message}`);
      return finish('error', [{ code: 'check.failed', level: 'error', message: `The check could not be made: ${message}` }]);
    }
  }

  /**
   * Removes this deployment's check containers whose job is no longer running
   * (left behind when a replica was killed mid-check). Returns how many were removed.
   */
  async removeOrphanContainers(): Promise<number> {
    const engine = this.deps.engine;
    if (!engine) return 0;
    let removed = 0;
    // Only this deployment's: another one on the same engine has jobs with the same ids in its own database.
    const deployment = await this.deps.store.deploymentId();
    const containers = await engine.docker.listContainers({ all: true, filters: { label: [`${CHECK_LABEL}=true`, `${DEPLOYMENT_LABEL}=${deployment}`] } });
    for (const info of containers) {
      const id = Number(info.Labels?.[CHECK_ID_LABEL]);
      const job = Number.isInteger(id) ? await this.deps.store.get(id) : undefined;
      if (job?.status === 'running') continue;
      await engine.docker.getContainer(info.Id).remove({ force: true }).catch(() => undefined);
      removed++;
    }
    return removed;
  }

  /**
   * Follows a check of `owner`'s image `imageId` until it ends (or `closed()`,
   * or 15 minutes), giving each state to `send`: read from the database every
   * half second, so that any replica can serve it. A user has at most
   * `maxStreamsPerUser` of these open at once on this replica.
   */
  async follow(owner: string, imageId: number, checkId: number, send: (check: CheckRow) => void, closed: () => boolean): Promise<void> {
    const first = await this.get(owner, checkId);
    if (first.imageId !== imageId) throw notFound('Check');
    const open = this.streams.get(owner) ?? 0;
    if (open >= this.deps.maxStreamsPerUser) {
      throw tooManyRequests(`${owner} follows ${open} running check${open === 1 ? '' : 's'} already (at most ${this.deps.maxStreamsPerUser} at once). Close another page of a running check, or reload this one later.`, 10);
    }
    this.streams.set(owner, open + 1);
    try {
      const until = Date.now() + FOLLOW_AT_MOST_MS;
      for (let check = first; ; check = await this.get(owner, checkId)) {
        send(check);
        if (!isActive(check.status) || closed() || Date.now() > until) return;
        await new Promise((r) => setTimeout(r, FOLLOW_EVERY_MS));
        if (closed()) return;
      }
    } finally {
      const left = (this.streams.get(owner) ?? 1) - 1;
      if (left > 0) this.streams.set(owner, left);
      else this.streams.delete(owner);
    }
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
