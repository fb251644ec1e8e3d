/**
 * The clean-up itself: built manifests the rules let go are deleted from the
 * site registry (through the service's registry client, its address guard
 * and the site credential of the push path), data volumes nobody owns are
 * removed after their grace, and every removal is in the audit log.
 *
 * Each deletion is recorded before and after: a manifest is taken
 * (`deleting`, with the run's id) before its DELETE is sent, and marked
 * `deleted` (with its audit entry, in one transaction) after the registry
 * answered 202 or 404. A run that stops half-way (the registry down, the
 * replica stopping) leaves its taken manifests `deleting`; the next run takes
 * them over and sends their DELETE again, which a manifest deleted already
 * answers 404: done, and recorded once. Volumes follow the same rule.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Knex } from 'knex';
import { auditEntry, type AuditEntry } from '../audit/store.js';
import type { HubClient } from '../hub/client.js';
import type { Foreground } from '../jobs/foreground.js';
import type { RunningJob } from '../jobs/running.js';
import { VOLUME_SYSTEM_LABEL } from '../launch/volumes.js';
import type { Logger } from '../log.js';
import type { RegistryClient, RegistryCredentials, RegistrySession } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { parseReference, type ImageReference } from '../registry/reference.js';
import type { DockerEngine } from '../runner/engine.js';
import { removeVolume, volumeInUse, volumesWithLabel } from '../runner/volumeUsage.js';
import type { System } from '../systems/schema.js';
import { storageRules, type StorageDefaults } from '../systems/storage.js';
import { keptDigests, sharedAndPublished } from './keptDigests.js';
import { judgeManifests, REASON_TEXT, type ManifestVerdict } from './rules.js';
import type { CleanupRunStore, PulledUsage, RunSummary } from './runs.js';
import type { StorageStore } from './store.js';
import { manifestKey, type BuiltManifestRow, type DataVolumeRow } from './store.js';
import { judgeVolume, ORPHAN_TEXT, orphanOf, volumeOwner, type VolumeContext, type VolumeVerdict } from './volumeRules.js';

/** Who removes things, in the audit log. */
export const CLEANUP_ACTOR = { name: 'custom-images', kind: 'service' as const };

/**
 * Launch entries read from the audit log per statement: each batch is read
 * and parsed in one stretch of the event loop (5,000 held it about 80 ms
 * while the bench launched 200 a second), with a turn between batches.
 */
const LAUNCH_BATCH = 1000;
/** Entries this young are read again by the next run: one committed late with a lower id is not missed. */
const LAUNCH_SETTLE_MS = 60_000;
/** Deletions recorded per transaction. */
const RECORD_BATCH = 100;
/** Registry requests at once while people wait on this replica (jobs/foreground.ts). */
const NARROWED_WIDTH = 1;
/** How often a lane set aside while the replica is busy looks again. */
const NARROWED_WAIT_MS = 50;
/** The pause after each registry request while the replica is busy: the clean-up takes a small share of a core. */
const NARROWED_PAUSE_MS = 20;

export interface CleanupDeps {
  db: Knex;
  store: StorageStore;
  runs: CleanupRunStore;
  /** Every system that exists: the stored ones, or the configured default while there are none. */
  systems: () => Promise<System[]>;
  /** The site credential a push of `owner`'s image to `reference` used (systems/service.ts). */
  credentialFor: (reference: ImageReference, owner: string) => Promise<RegistryCredentials | undefined>;
  defaults: StorageDefaults;
  registry: RegistryClient;
  hub: Pick<HubClient, 'userNames' | 'userExists'>;
  /** This replica's engine; volumes runs need one. */
  engine?: DockerEngine | undefined;
  logger: Logger;
  /** Registry requests at once. */
  concurrency?: number;
  /** Whether people are waiting on this replica: the clean-up then sends one registry request at a time. */
  foreground?: Pick<Foreground, 'busy'>;
  now?: () => Date;
}

/** A manifest and what the rules say of it. */
export interface ManifestPlanItem {
  manifest: BuiltManifestRow;
  verdict: ManifestVerdict;
}

/** A volume and what the rules say of it. */
export interface VolumePlanItem {
  volume: DataVolumeRow;
  verdict: VolumeVerdict;
  /** When its user last started a server on its system (the audit log). */
  lastUsedAt: Date | null;
}

function emptySummary(): RunSummary {
  return {
    deletedManifests: 0,
    deletedBytes: 0,
    removedVolumes: 0,
    removedVolumeBytes: 0,
    waiting: 0,
    inUse: 0,
    failures: 0,
    removed: [],
    problems: [],
  };
}

/** How many items at once, and how long to wait after each (both asked again before each item). */
interface Pace {
  width: () => number;
  pauseMs: () => number;
}

/**
 * Runs `work` over `items` at `pace` (background work narrows and slows
 * while people are waiting, see jobs/foreground.ts); stops taking new items
 * once `stop()` says so.
 */
async function eachLimited<T>(items: readonly T[], pace: Pace, stop: () => boolean, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await Promise.all(
    Array.from({ length: Math.min(Math.max(pace.width(), 1), items.length) }, async (_, lane) => {
      while (next < items.length && !stop()) {
        if (lane >= pace.width()) {
          await sleep(NARROWED_WAIT_MS);
          continue;
        }
        await work(items[next++] as T);
        const pause = pace.pauseMs();
        if (pause > 0) await sleep(pause);
      }
    }),
  );
}

/** Registry failures that end a run: the next requests would fail alike. */
function endsTheRun(err: unknown): boolean {
  return (
    err instanceof RegistryError &&
    [
      'registry.unreachable',
      'registry.server_error',
      'registry.rate_limited',
      'registry.unsupported',
      'registry.refused_address',
      'registry.tls',
    ].includes(err.code)
  );
}

export class Cleanup {
  private readonly now: () => Date;

  constructor(private readonly deps: CleanupDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** Registry requests at once: `full` without a pause, or one at a time with a pause while the replica serves people. */
  private pace(full: number): Pace {
    const widest = this.deps.concurrency ?? full;
    const busy = () => this.deps.foreground?.busy() ?? false;
    return { width: () => (busy() ? Math.min(NARROWED_WIDTH, widest) : widest), pauseMs: () => (busy() ? NARROWED_PAUSE_MS : 0) };
  }

  /** The rules of each system, by slug; a system that no longer exists gets the defaults. */
  private async rulesBySystem(): Promise<{ systems: System[]; rules: (slug: string) => ReturnType<typeof storageRules> }> {
    const systems = await this.deps.systems();
    const bySlug = new Map(systems.map((s) => [s.slug, storageRules(s.storage, this.deps.defaults)]));
    const fallback = storageRules(undefined, this.deps.defaults);
    return { systems, rules: (slug) => bySlug.get(slug) ?? fallback };
  }

  /**
   * Reads launches from the audit log since the furthest run got: the newest
   * start of each built manifest and of each user's server per system.
   * Returns how far it read (entries younger than a minute are read again next time).
   */
  async readLaunches(): Promise<number> {
    const { store, runs } = this.deps;
    let cursor = await runs.auditCursor();
    const settled = this.now().getTime() - LAUNCH_SETTLE_MS;
    // The cursor stops before the first young entry: entries after it are read again next time.
    let young = false;
    for (let read = cursor; ;) {
      const entries = await store.launchEntriesAfter(read, LAUNCH_BATCH);
      if (entries.length === 0) break;
      const images = new Map<string, Date>();
      const volumes = new Map<string, { user: string; system: string; at: Date }>();
      for (const entry of entries) {
        read = entry.id;
        if (entry.at.getTime() >= settled) young = true;
        if (!young) cursor = entry.id;
        const { image, user, system } = entry.details as { image?: unknown; user?: unknown; system?: unknown };
        if (typeof image === 'string' && image.includes('@')) {
          if ((images.get(image)?.getTime() ?? 0) < entry.at.getTime()) images.set(image, entry.at);
        }
        if (typeof user === 'string' && typeof system === 'string') {
          const key = `${user}\u0000${system}`;
          if ((volumes.get(key)?.at.getTime() ?? 0) < entry.at.getTime()) volumes.set(key, { user, system, at: entry.at });
        }
      }
      await store.recordManifestLaunches(images);
      await store.recordVolumeLaunches([...volumes.values()]);
      if (entries.length < LAUNCH_BATCH) break;
      await nextTurn();
    }
    return cursor;
  }

  // -- the site registry ----------------------------------------------------

  /**
   * What the rules say of every built manifest still in the registry (the
   * builds not recorded yet are recorded first). A dry run writes nothing
   * else; a real run also notes since when a manifest is no longer its
   * image's (`write`).
   */
  async registryPlan(write: boolean): Promise<ManifestPlanItem[]> {
    const { db, store } = this.deps;
    await store.recordBuilds();
    const now = this.now();
    const [manifests, kept, { rules }] = await Promise.all([store.liveManifests(), keptDigests(db), this.rulesBySystem()]);
    const { shared, published } = await sharedAndPublished(db, kept);
    const oldest = manifests.reduce((min, m) => Math.min(min, now.getTime() - rules(m.system).retentionMs), now.getTime());
    const launched = await store.engineLaunchesSince(new Date(oldest));
    const verdicts = judgeManifests(manifests, { now, retentionMs: (s) => rules(s).retentionMs, kept, shared, published, launched });
    if (write) {
      const unused = manifests.filter((m) => verdicts.get(m.id)?.reason === 'unused' && !m.unusedSince).map((m) => m.id);
      await store.setUnusedSince(unused, now);
      const current = manifests
        .filter((m) => m.unusedSince && ['current', 'shared', 'published', 'revision'].includes(verdicts.get(m.id)?.reason ?? ''))
        .map((m) => m.id);
      await store.clearUnusedSince(current);
    }
    return manifests.flatMap((manifest) => {
      const verdict = verdicts.get(manifest.id);
      return verdict ? [{ manifest, verdict }] : [];
    });
  }

  /** Reads the blobs of manifests never measured (for quotas and the page), `owner`'s or all. */
  async measure(filter: { owner?: string } = {}, signal?: AbortSignal): Promise<number> {
    const rows = await this.deps.store.unmeasured(filter);
    const sessions = new SessionCache(this.deps);
    let measured = 0;
    await eachLimited(
      rows,
      this.pace(8),
      () => signal?.aborted ?? false,
      async (row) => {
        try {
          const blobs = await (await sessions.of(row)).manifestBlobs(row.digest);
          await this.deps.store.setBlobs(row.id, blobs);
          measured++;
        } catch (err) {
          if (err instanceof RegistryError && err.code === 'registry.not_found') {
            // Not in the registry (any more): it takes no space there.
            await this.deps.store.setBlobs(row.id, []);
            return;
          }
          this.deps.logger.warn(
            { manifest: manifestKey(row.repository, row.digest), reason: String((err as Error).message ?? err) },
            'could not measure a built manifest',
          );
        }
      },
    );
    return measured;
  }

  /**
   * One registry run: launches read, builds recorded, manifests measured,
   * then every manifest the rules let go (and every one a stopped run was
   * deleting) deleted from the registry. Throws nothing for a registry that
   * fails: the summary says so, and the next run resumes.
   */
  async runRegistry(run: number, job?: RunningJob): Promise<{ summary: RunSummary; auditCursor: number; failed?: string }> {
    const { store, logger } = this.deps;
    const summary = emptySummary();
    const auditCursor = await this.readLaunches();
    job?.progress(() => ({ audit_cursor: auditCursor }));
    const plan = await this.registryPlan(true);
    const byId = new Map(plan.map((p) => [p.manifest.id, p]));
    const leftOver = await store.leftDeleting(run);
    const candidates = [
      ...plan.filter((p) => !p.verdict.keep).map((p) => p.manifest.id),
      ...leftOver.map((m) => m.id).filter((id) => byId.get(id)?.verdict.keep !== false),
    ];
    summary.waiting = plan.filter(
      (p) => p.verdict.keep && (p.verdict.reason === 'grace' || p.verdict.reason === 'started' || p.verdict.reason === 'unused'),
    ).length;
    const held = new Set(await store.takeForDeletion([...new Set(candidates)], run));
    const rows = [...plan.map((p) => p.manifest), ...leftOver.filter((m) => !byId.has(m.id))].filter((m) => held.has(m.id));
    const sessions = new SessionCache(this.deps);
    const done: Array<{ id: number; at: Date; entry: AuditEntry }> = [];
    const flush = async () => {
      const batch = done.splice(0, done.length);
      const recorded = await store.deleted(run, batch);
      summary.deletedManifests += recorded;
      job?.progress(() => ({ summary: JSON.stringify(summary) }));
    };
    let fatal: string | undefined;
    await eachLimited(
      rows,
      this.pace(16),
      () => fatal !== undefined || (job?.signal.aborted ?? false),
      async (manifest) => {
        const verdict = byId.get(manifest.id)?.verdict;
        try {
          const session = await sessions.of(manifest);
          if (verdict?.keep) {
            // A stopped run was deleting it, and the rules keep it now: if the DELETE never went out, it stays.
            if (await session.hasManifest(manifest.digest)) {
              await store.keptAfterAll(run, [manifest.id], null);
              return;
            }
          } else {
            await session.deleteManifest(manifest.digest);
          }
          const at = this.now();
          done.push({ id: manifest.id, at, entry: this.manifestEntry(manifest, verdict, run) });
          summary.deletedBytes += manifest.bytes ?? 0;
          if (summary.removed.length < 50) summary.removed.push(manifestKey(manifest.repository, manifest.digest));
          if (done.length >= RECORD_BATCH) await flush();
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          summary.failures++;
          if (endsTheRun(err)) {
            fatal ??= message;
            await store.deleteFailed([manifest.id], message);
            return;
          }
          // This manifest alone (a credential that may not delete it): given back, tried again next run.
          await store.keptAfterAll(run, [manifest.id], message);
          logger.warn(
            { manifest: manifestKey(manifest.repository, manifest.digest), reason: message },
            'could not delete a built manifest',
          );
        }
      },
    );
    await flush();
    // What stays is measured (quotas and the storage page count it); what went needs no reading.
    if (!fatal) await this.measure({}, job?.signal);
    if (fatal) {
      summary.problems.push(fatal);
      return {
        summary,
        auditCursor,
        failed: `The registry failed half-way: ${fatal} ${summary.deletedManifests} manifests were deleted; the next clean-up resumes the rest.`,
      };
    }
    return { summary, auditCursor };
  }

  private manifestEntry(manifest: BuiltManifestRow, verdict: ManifestVerdict | undefined, run: number): AuditEntry {
    const reason = verdict && !verdict.keep ? verdict.reason : 'resumed';
    return auditEntry(
      CLEANUP_ACTOR,
      'storage.manifest.delete',
      { type: 'image', id: String(manifest.imageId) },
      {
        owner: manifest.owner,
        image: manifest.imageName,
        system: manifest.system,
        build: manifest.buildNumber,
        manifest: manifestKey(manifest.repository, manifest.digest),
        reason,
        why: reason === 'resumed' ? 'a clean-up that stopped had started deleting it' : REASON_TEXT[reason as keyof typeof REASON_TEXT],
        ...(manifest.bytes !== null ? { bytes: manifest.bytes } : {}),
        run,
      },
    );
  }

  // -- data volumes -----------------------------------------------------------

  /** The hub's users, confirmed one by one for those `candidates` the list lacks; undefined when the hub cannot tell. */
  private async hubUsers(candidates: Iterable<string>, problems: string[]): Promise<Set<string> | undefined> {
    let users: Set<string>;
    try {
      users = new Set(await this.deps.hub.userNames());
    } catch (err) {
      problems.push(
        `The hub did not list its users (${err instanceof Error ? err.message : String(err)}): volumes of removed users are not looked for. The service's token needs the scope list:users (README).`,
      );
      return undefined;
    }
    for (const user of new Set(candidates)) {
      if (users.has(user)) continue;
      // A list narrowed by the token's scopes must not make anyone look removed: the hub says 404 for each.
      try {
        if (await this.deps.hub.userExists(user)) users.add(user);
      } catch (err) {
        problems.push(`The hub did not say whether ${user} exists (${err instanceof Error ? err.message : String(err)}).`);
        users.add(user);
      }
    }
    return users;
  }

  /** What the volume rules need to know, fresh from the hub, the systems and the requests. */
  private async volumeContext(users: Iterable<string>, problems: string[]): Promise<VolumeContext> {
    const { systems, rules } = await this.rulesBySystem();
    return {
      now: this.now(),
      hubUsers: await this.hubUsers(users, problems),
      systems: new Set(systems.map((s) => s.slug)),
      requests: await this.deps.store.removalRequests(),
      launches: await this.deps.store.volumeLaunches(),
      graceMs: (slug) => rules(slug).volumeGraceMs,
    };
  }

  /** What the rules say of each volume the runs know (a dry run: nothing is written). */
  async volumePlan(): Promise<{ items: VolumePlanItem[]; problems: string[] }> {
    const volumes = await this.deps.store.volumes({ statuses: ['present', 'removing'] });
    const problems: string[] = [];
    const context = await this.volumeContext(
      volumes.map((v) => v.user),
      problems,
    );
    return {
      items: volumes.map((volume) => ({
        volume,
        verdict: judgeVolume(volume, context),
        lastUsedAt: context.launches.get(`${volume.user}\u0000${volume.system}`) ?? null,
      })),
      problems,
    };
  }

  /**
   * One volumes run on this replica's engine: the service's data volumes
   * listed with their sizes, nobody's marked, and those past their grace
   * removed unless kept or in use; the images kept in the engine measured.
   */
  async runVolumes(run: number, job?: RunningJob): Promise<{ summary: RunSummary; auditCursor: number; usage: PulledUsage[] }> {
    const { engine, store } = this.deps;
    if (!engine) throw new Error('a volumes run needs a Docker engine');
    const summary = emptySummary();
    const auditCursor = await this.readLaunches();
    job?.progress(() => ({ audit_cursor: auditCursor }));
    const engineId = await engine.id();
    const now = this.now();
    const launched = await store.volumeLaunches();
    const listing = await volumesWithLabel(engine, VOLUME_SYSTEM_LABEL);
    const present = new Set<string>();
    for (const volume of listing) {
      const owner = volumeOwner(volume.name, volume.labels);
      // Made by this deployment: a launch of its own wrote this user's server on this system in its audit log.
      if (!owner || !launched.has(`${owner.user}\u0000${owner.system}`)) continue;
      present.add(volume.name);
      await store.sawVolume(
        engineId,
        { name: volume.name, user: owner.user, system: owner.system, bytes: volume.bytes, inUse: volume.inUse },
        now,
      );
    }
    await store.goneFrom(engineId, present, now);
    const rows = await store.volumes({ engine: engineId, statuses: ['present', 'removing'] });
    const context = await this.volumeContext(
      rows.map((r) => r.user),
      summary.problems,
    );
    for (const row of rows) {
      if (job?.signal.aborted) break;
      const orphan = orphanOf(row, context);
      if ((orphan?.reason ?? null) !== row.orphanReason || (orphan?.since.getTime() ?? null) !== (row.orphanedAt?.getTime() ?? null)) {
        await store.setOrphaned(row.id, orphan ?? null);
      }
      const verdict = judgeVolume({ ...row, orphanedAt: orphan?.since ?? null, orphanReason: orphan?.reason ?? null }, context);
      if (!verdict.remove && verdict.reason !== 'owned') {
        if (verdict.reason === 'in_use') summary.inUse++;
        else summary.waiting++;
      }
      if (!verdict.remove && row.status !== 'removing') continue;
      if (!(await store.takeVolume(row.id, run))) continue;
      if (!verdict.remove) {
        // A stopped run was removing it, and the rules keep it now.
        await store.volumeKept(row.id, run, row.inUse);
        continue;
      }
      try {
        // The listing is a moment old: a container may mount it since. The engine refuses then, too.
        if (await volumeInUse(engine, row.name)) {
          await store.volumeKept(row.id, run, true);
          summary.inUse++;
          continue;
        }
        const outcome = await removeVolume(engine, row.name);
        if (outcome === 'in_use') {
          await store.volumeKept(row.id, run, true);
          summary.inUse++;
          continue;
        }
        const at = this.now();
        const recorded = await store.volumeRemoved(
          row.id,
          run,
          at,
          auditEntry(
            CLEANUP_ACTOR,
            'storage.volume.remove',
            { type: 'data_volume', id: String(row.id) },
            {
              volume: row.name,
              user: row.user,
              system: row.system,
              engine: engineId,
              reason: verdict.reason,
              why: ORPHAN_TEXT[verdict.reason],
              since: verdict.since.toISOString(),
              ...(row.bytes !== null ? { bytes: row.bytes } : {}),
              run,
            },
          ),
        );
        if (recorded) {
          summary.removedVolumes++;
          summary.removedVolumeBytes += row.bytes ?? 0;
          if (summary.removed.length < 50) summary.removed.push(row.name);
        }
      } catch (err) {
        summary.failures++;
        summary.problems.push(err instanceof Error ? err.message : String(err));
        await store.volumeKept(row.id, run, row.inUse);
      }
      job?.progress(() => ({ summary: JSON.stringify(summary) }));
    }
    return { summary, auditCursor, usage: await this.pulledUsage(engineId) };
  }

  /** What the images the service keeps in this engine take, by owner and system. */
  private async pulledUsage(engineId: string): Promise<PulledUsage[]> {
    const { engine, db } = this.deps;
    if (!engine) return [];
    const rows = (await db('engine_images as e')
      .leftJoin('images as i', 'i.id', 'e.image_id')
      .where({ 'e.engine': engineId, 'e.status': 'ready' })
      .select('e.image', 'e.owner', 'i.system')) as Array<Record<string, unknown>>;
    const usage = new Map<string, PulledUsage>();
    for (const row of rows) {
      const size = await engine.imageSize(String(row.image)).catch(() => undefined);
      if (!size) continue;
      const owner = String(row.owner ?? '');
      const system = String(row.system ?? '');
      const key = `${owner}\u0000${system}`;
      const entry = usage.get(key) ?? { owner, system, bytes: 0, images: 0 };
      entry.bytes += size.bytes;
      entry.images++;
      usage.set(key, entry);
    }
    return [...usage.values()];
  }
}

/** Registry sessions of one run, one per repository and owner, each with the site credential of its push path. */
class SessionCache {
  private readonly sessions = new Map<string, Promise<RegistrySession>>();

  constructor(private readonly deps: Pick<CleanupDeps, 'registry' | 'credentialFor'>) {}

  of(manifest: Pick<BuiltManifestRow, 'repository' | 'digest' | 'owner'>): Promise<RegistrySession> {
    const key = `${manifest.repository}\u0000${manifest.owner}`;
    let session = this.sessions.get(key);
    if (!session) {
      const reference = parseReference(`${manifest.repository}@${manifest.digest}`);
      session = this.deps
        .credentialFor(reference, manifest.owner)
        .then((credentials) => this.deps.registry.session(reference, credentials));
      this.sessions.set(key, session);
    }
    return session;
  }
}
