/**
 * Storage for admins and users: what the site keeps and for whom, the
 * clean-up's runs, its dry run, keeping a volume; a user's use against their
 * quotas, and their request that their data go. Who may do what is asked of
 * hub/access.ts first.
 */
import { createHash } from 'node:crypto';
import { auditEntry, type AuditTarget } from '../audit/store.js';
import { notFound } from '../errors.js';
import type { AccessRules } from '../hub/access.js';
import type { HubIdentity } from '../hub/identity.js';
import type { System } from '../systems/schema.js';
import { storageRules, type StorageDefaults } from '../systems/storage.js';
import type { Cleanup, ManifestPlanItem, VolumePlanItem } from './cleanup.js';
import type { CleanupKind } from './job.js';
import type { QuotaUsage, Quotas } from './quota.js';
import type { CleanupRunRow, CleanupRunStore, PulledUsage } from './runs.js';
import type { DataVolumeRow, StorageStore } from './store.js';
import { storageUsage, type StorageUsage } from './usage.js';

export interface StorageServiceDeps {
  access: AccessRules;
  store: StorageStore;
  runs: CleanupRunStore;
  cleanup: Cleanup;
  quotas: Quotas;
  /** Every system that exists (the stored ones, or the configured default while there are none). */
  systems: () => Promise<System[]>;
  defaults: StorageDefaults;
  /** A user's images, and deleting one (images/service.ts: ownership, audit, its built manifests' grace). */
  images: {
    list(actor: HubIdentity, owner: string): Promise<Array<{ id: number; system: { slug: string } }>>;
    remove(actor: HubIdentity, owner: string, id: number): Promise<void>;
  };
  /** This replica's engine id, when it has one. */
  engineId?: () => Promise<string>;
  /** Told when a run was queued (wakes the worker). */
  onQueued?: () => void;
  now?: () => Date;
}

/** The storage page and API: use, the newest runs, and every known data volume with what the rules say of it. */
export interface StorageOverview {
  usage: StorageUsage;
  /** When the pre-pulled figures were measured, per engine. */
  pulledAsOf: Array<{ engine: string; at: Date | null }>;
  lastRuns: CleanupRunRow[];
  recentRuns: CleanupRunRow[];
  volumes: VolumePlanItem[];
  problems: string[];
}

/** What a clean-up would do now. */
export interface DryRun {
  at: Date;
  manifests: ManifestPlanItem[];
  volumes: VolumePlanItem[];
  problems: string[];
}

/** A user's data and their request that it go. */
export interface DataRemoval {
  requestedAt: Date | null;
  /** Each volume, with when it may be removed (after the request, its system's grace). */
  volumes: Array<DataVolumeRow & { removeAfter: Date | null }>;
}

/** A user name as an audit target (at most 64 characters: longer names by their hash). */
function userTarget(user: string): AuditTarget {
  return { type: 'user', id: user.length <= 64 ? user : `sha256:${createHash('sha256').update(user).digest('hex').slice(0, 57)}` };
}

export class StorageService {
  private readonly now: () => Date;
  private cached: { at: number; usage: Promise<StorageUsage> } | undefined;

  constructor(private readonly deps: StorageServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** Storage per user and system now (from the database; pre-pulled images as last measured). */
  async usage(): Promise<StorageUsage> {
    const { store, runs } = this.deps;
    const [manifests, volumes, last] = await Promise.all([
      store.liveManifests(),
      store.volumes({ statuses: ['present', 'removing'] }),
      runs.lastEnded(),
    ]);
    const pulled: PulledUsage[] = last.filter((r) => r.kind === 'volumes').flatMap((r) => r.usage ?? []);
    return storageUsage(manifests, volumes, pulled);
  }

  /** {@link usage}, reused for `maxAgeMs` (metrics are scraped often; the figures change slowly). */
  usageCached(maxAgeMs = 30_000): Promise<StorageUsage> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > maxAgeMs) {
      const usage = this.usage();
      this.cached = { at: now, usage };
      usage.catch(() => {
        this.cached = undefined;
      });
    }
    return this.cached.usage;
  }

  /** The newest ended run of each lane (metrics). */
  lastRuns(): Promise<CleanupRunRow[]> {
    return this.deps.runs.lastEnded();
  }

  async overview(actor: HubIdentity): Promise<StorageOverview> {
    this.deps.access.manageStorage(actor);
    const [usage, lastRuns, recentRuns, plan] = await Promise.all([
      this.usage(),
      this.deps.runs.lastEnded(),
      this.deps.runs.recent(20),
      this.deps.cleanup.volumePlan(),
    ]);
    return {
      usage,
      pulledAsOf: lastRuns.filter((r) => r.kind === 'volumes').map((r) => ({ engine: r.engine, at: r.finishedAt })),
      lastRuns,
      recentRuns,
      volumes: plan.items,
      problems: plan.problems,
    };
  }

  /** What a clean-up would remove now, and what it keeps and why; nothing is removed. */
  async dryRun(actor: HubIdentity): Promise<DryRun> {
    this.deps.access.manageStorage(actor);
    const manifests = await this.deps.cleanup.registryPlan(false);
    const volumes = await this.deps.cleanup.volumePlan();
    return { at: this.now(), manifests, volumes: volumes.items, problems: volumes.problems };
  }

  /** Queues a registry run and a volumes run for every engine the service knows (the worker of each takes its own). */
  async requestRun(actor: HubIdentity): Promise<CleanupRunRow[]> {
    this.deps.access.manageStorage(actor);
    const now = this.now();
    const engines = new Set(await this.deps.runs.knownEngines());
    const own = await this.deps.engineId?.().catch(() => undefined);
    if (own) engines.add(own);
    const queued: Array<[CleanupKind, string]> = [['registry', ''], ...[...engines].map((e): [CleanupKind, string] => ['volumes', e])];
    const ids: number[] = [];
    for (const [kind, engine] of queued) ids.push(await this.deps.runs.request(kind, engine, actor.name, now));
    this.deps.onQueued?.();
    return (await Promise.all(ids.map((id) => this.deps.runs.get(id)))).filter((r): r is CleanupRunRow => r !== undefined);
  }

  async run(actor: HubIdentity, id: number): Promise<CleanupRunRow> {
    this.deps.access.manageStorage(actor);
    const run = await this.deps.runs.get(id);
    if (!run) throw notFound('Clean-up run');
    return run;
  }

  /** An admin keeps a data volume whatever the rules say, or no longer does. */
  async keepVolume(actor: HubIdentity, id: number, keep: boolean): Promise<DataVolumeRow> {
    this.deps.access.manageStorage(actor);
    const volume = await this.deps.store.volume(id);
    if (!volume || volume.status === 'removed' || volume.status === 'gone') throw notFound('Volume');
    await this.deps.store.setKept(
      id,
      keep ? actor.name : null,
      this.now(),
      auditEntry(
        actor,
        keep ? 'storage.volume.keep' : 'storage.volume.unkeep',
        { type: 'data_volume', id: String(id) },
        {
          volume: volume.name,
          user: volume.user,
          system: volume.system,
          engine: volume.engine,
        },
      ),
    );
    return (await this.deps.store.volume(id)) as DataVolumeRow;
  }

  /** One data volume with what the rules say of it now. */
  async volumeItem(actor: HubIdentity, id: number): Promise<VolumePlanItem> {
    this.deps.access.manageStorage(actor);
    const item = (await this.deps.cleanup.volumePlan()).items.find((i) => i.volume.id === id);
    if (!item) throw notFound('Volume');
    return item;
  }

  /**
   * `owner`'s use of each system they have images on or may build on,
   * against the quotas there. `imageSystems`: the systems of their images,
   * when the caller has listed them already (My images).
   */
  async quotasOf(actor: HubIdentity, owner: string, imageSystems?: readonly string[]): Promise<QuotaUsage[]> {
    this.deps.access.readImagesOf(actor, owner);
    const systems = await this.deps.systems();
    const used = new Set(imageSystems ?? (await this.deps.images.list(actor, owner)).map((i) => i.system.slug));
    const shown = systems.filter((s) => used.has(s.slug) || (s.enabled && s.build.enabled));
    return Promise.all(shown.map((system) => this.deps.quotas.usage(system, owner)));
  }

  /** `owner`'s data volumes and whether they asked for them to go. */
  async dataRemoval(actor: HubIdentity, owner: string): Promise<DataRemoval> {
    this.deps.access.readImagesOf(actor, owner);
    const requestedAt = (await this.deps.store.removalRequestOf(owner)) ?? null;
    const systems = new Map((await this.deps.systems()).map((s) => [s.slug, s]));
    const volumes = (await this.deps.store.volumesOf(owner)).map((volume) => ({
      ...volume,
      removeAfter: requestedAt
        ? new Date(requestedAt.getTime() + storageRules(systems.get(volume.system)?.storage, this.deps.defaults).volumeGraceMs)
        : null,
    }));
    return { requestedAt, volumes };
  }

  /**
   * `owner` asks for their data to go: every image of theirs is deleted (its
   * built manifests follow after the retention), and their data volumes are
   * removed after the grace, unless they withdraw the request before or an
   * admin keeps a volume.
   */
  async requestDataRemoval(actor: HubIdentity, owner: string): Promise<DataRemoval> {
    this.deps.access.writeImagesOf(actor, owner);
    for (const image of await this.deps.images.list(actor, owner)) {
      await this.deps.images.remove(actor, owner, image.id).catch((err: unknown) => {
        // Deleted at the same moment by another request: what was asked for.
        if (!(err instanceof Error && 'status' in err && (err as { status: number }).status === 404)) throw err;
      });
    }
    const now = this.now();
    await this.deps.store.requestRemoval(owner, now, auditEntry(actor, 'storage.data.request', userTarget(owner), { user: owner }));
    return this.dataRemoval(actor, owner);
  }

  /** `owner` keeps their data after all (before the grace ended). */
  async withdrawDataRemoval(actor: HubIdentity, owner: string): Promise<DataRemoval> {
    this.deps.access.writeImagesOf(actor, owner);
    await this.deps.store.withdrawRemoval(
      owner,
      this.now(),
      auditEntry(actor, 'storage.data.withdraw', userTarget(owner), { user: owner }),
    );
    return this.dataRemoval(actor, owner);
  }
}
