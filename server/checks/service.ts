/**
 * Check jobs of users' saved images: queued on request (at most a few per
 * user), run by a worker (checks/worker.ts) step by step (checks/run.ts)
 * within a deadline, and followed from any replica, since progress and log
 * are stored as the job goes.
 */
import { auditEntry, imageTarget, SERVICE_ITSELF, type AuditActor, type AuditLog } from '../audit/store.js';
import { conflict, notFound } from '../errors.js';
import { Followers } from '../jobs/follow.js';
import type { HubClient } from '../hub/client.js';
import type { AccessRules } from '../hub/access.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageService } from '../images/service.js';
import type { RegistryClient } from '../registry/client.js';
import type { PullService } from '../pulls/service.js';
import type { Keyring } from '../secrets/keyring.js';
import type { DockerEngine } from '../runner/engine.js';
import type { RunLimits } from '../runner/runCheck.js';
import { policyHash } from '../systems/policy.js';
import type { SystemCatalog } from '../systems/schema.js';
import type { LayerIndexCache } from './layerCache.js';
import type { InventoryStore } from '../inventory/store.js';
import { CheckRun } from './run.js';
import { checkJobKind, deadlineFinding } from './job.js';
import type { JobKind } from '../jobs/kind.js';
import { CheckRecorder } from './recorder.js';
import type { RunningJob } from '../jobs/running.js';
import { isActive, type CheckStatus } from './status.js';
import type { CheckRow, CheckStore } from './store.js';

export interface CheckServiceDeps {
  store: CheckStore;
  images: ImageService;
  systems: SystemCatalog;
  registry: RegistryClient;
  layers: LayerIndexCache;
  /** Where a check keeps what the image holds, by digest. */
  inventories: Pick<InventoryStore, 'has' | 'put'>;
  hub: Pick<HubClient, 'version'>;
  /** Undefined when no Docker engine is configured: the run check is skipped. */
  engine?: DockerEngine | undefined;
  runLimits: RunLimits;
  /** How long the run check's pull may take. */
  pullTimeoutMs?: number | undefined;
  /** How long a whole check may take (the deadline of its job kind, checks/job.ts). */
  deadlineMs: number;
  /** Checks one user may have queued or running at once. */
  maxQueuedPerUser: number;
  /** Who may check and follow whose images. */
  access: AccessRules;
  /** Told when a check was queued (wakes the worker). */
  onQueued?: () => void;
  /** Where each check request is recorded, with who asked (the image's history). */
  audit: Pick<AuditLog, 'append'>;
  /** Fingerprints credentials, so that results are reused only with the same one. */
  keyring: Pick<Keyring, 'fingerprint'>;
  /** Progress streams one user may have open at once on this replica. */
  maxStreamsPerUser: number;
  /** Keep images pulled for a run check on the host even when no launch will use them. */
  keepPulledImages: boolean;
  /** Keeps passed images in the engine for launches on Docker systems; undefined without an engine. */
  pulls?: PullService | undefined;
  /** Told when a check has ended and its result is stored (revisions/ records new content); must not throw. */
  onEnded?: (checkId: number) => Promise<void>;
  now?: () => Date;
}

/** How a check is queued for the service's own reasons. */
export interface QueueOptions {
  /**
   * A moved tag's new content, read without becoming the image's check until
   * its owner accepts it; `reference`: the tag to read when the image is pinned.
   */
  candidate?: { reference: string };
  /** Who asked, for the audit entry; the service itself by default. */
  by?: AuditActor;
}

const HUB_VERSION_TTL_MS = 3600_000;

export class CheckService {
  /** Check jobs as jobs/ runs them, with this service's deadline. */
  readonly jobKind: JobKind;
  private hubVersion: { value: string | undefined; at: number } | undefined;
  private readonly followers: Followers;
  private readonly now: () => Date;

  constructor(private readonly deps: CheckServiceDeps) {
    this.now = deps.now ?? (() => new Date());
    this.followers = new Followers(deps.maxStreamsPerUser, 'running check');
    this.jobKind = checkJobKind(deps.deadlineMs);
  }

  /** Whether checks also start the image in Docker. */
  get runsImages(): boolean {
    return this.deps.engine !== undefined;
  }

  /** Queues a check of a saved image; the returned job is followed with {@link get}. */
  async request(actor: HubIdentity, owner: string, imageId: number): Promise<CheckRow> {
    // The owner, or the spawner hook before a launch.
    this.deps.access.readImagesOf(actor, owner);
    return this.queue(owner, imageId, { by: actor });
  }

  /**
   * Queues a check; the caller has checked who asks. `options.by`: who
   * asked, for the audit entry (the service itself when a build finished).
   */
  async queue(owner: string, imageId: number, options: QueueOptions = {}): Promise<CheckRow> {
    const image = await this.deps.images.load(owner, imageId);
    await this.deps.store.assertQueueRoom(owner, this.deps.maxQueuedPerUser);
    const system = await this.deps.systems.get(image.system.slug);
    if (!system) throw conflict(`The system "${image.system.slug}" of this image no longer exists; choose another system.`);
    const check: Omit<CheckRow, 'id'> = {
      imageId,
      owner,
      system: system.slug,
      reference: options.candidate?.reference ?? image.reference,
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
      candidate: options.candidate !== undefined,
    };
    const id = await this.deps.store.insert(check);
    await this.deps.audit.append(
      auditEntry(options.by ?? SERVICE_ITSELF, 'image.check', imageTarget(imageId), {
        owner,
        check: id,
        reference: image.reference,
        kind: check.kind,
      }),
      check.createdAt,
    );
    this.deps.onQueued?.();
    return { ...check, id };
  }

  /**
   * Runs a claimed job to its end and stores the result; engine or registry
   * failures end in `error`. At the job's deadline (jobs/ aborts its signal)
   * the check ends in `error` at once, its registry requests and container
   * stopped: a registry that sends a byte every few seconds holds no worker
   * for ever.
   */
  async execute(row: CheckRow, job: RunningJob): Promise<CheckStatus> {
    const record = new CheckRecorder(job, row, this.now);
    const atDeadline = () => {
      if (job.stopReason !== 'deadline') return;
      record.log(`Stopped: the check took longer than ${Math.round(this.deps.deadlineMs / 1000)} s.`);
      void record.finish('error', [deadlineFinding(this.deps.deadlineMs)], { kind: 'static' });
    };
    job.signal.addEventListener('abort', atDeadline, { once: true });
    try {
      const run = new CheckRun({ ...this.deps, hubVersion: () => this.hubVersionCached() }, row, record, job.signal);
      const status = await Promise.race([run.run(), record.ended]);
      await this.deps.onEnded?.(row.id);
      return status;
    } finally {
      job.signal.removeEventListener('abort', atDeadline);
    }
  }

  /**
   * Follows a check of `owner`'s image `imageId` until it ends (or `closed()`,
   * or 15 minutes), giving each state to `send`: read from the database every
   * half second, so that any replica can serve it. A user has at most
   * `maxStreamsPerUser` of these open at once on this replica.
   */
  async follow(
    actor: HubIdentity,
    owner: string,
    imageId: number,
    checkId: number,
    send: (check: CheckRow) => void,
    closed: () => boolean,
  ): Promise<void> {
    const first = await this.get(actor, checkId);
    if (first.owner !== owner) throw notFound('Check');
    if (first.imageId !== imageId) throw notFound('Check');
    await this.followers.follow(
      owner,
      first,
      () => this.get(actor, checkId),
      (c) => isActive(c.status),
      send,
      closed,
    );
  }

  /** A check, for its owner or the spawner hook; someone else's is not found. */
  async get(actor: HubIdentity, checkId: number): Promise<CheckRow> {
    const check = await this.deps.store.get(checkId);
    this.deps.access.readImagesOf(actor, check?.owner ?? actor.name);
    if (!check) throw notFound('Check');
    return check;
  }

  /** The newest checks of one of `owner`'s images. */
  async history(actor: HubIdentity, owner: string, imageId: number): Promise<CheckRow[]> {
    this.deps.access.readImagesOf(actor, owner);
    await this.deps.images.load(owner, imageId);
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
