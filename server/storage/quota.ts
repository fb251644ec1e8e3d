/**
 * Quotas: images saved, builds kept and registry bytes of built images, for
 * each user on a system and for the system as a whole. A save or build that
 * would pass one is refused before anything is stored or queued, in words
 * that say what to delete; My images shows the use against each.
 *
 * Builds kept are the manifests of the user's images still in the site
 * registry plus the builds waiting or running; registry bytes are the sizes
 * their manifests state for config and layers, each blob counted once per
 * user (builds of one image share most layers). The size of a build not yet
 * made is not known: a build is refused once the bytes in use reach the quota.
 */
import { quotaExceeded } from '../errors.js';
import { formatBytes } from '../format.js';
import type { System } from '../systems/schema.js';
import { storageRules, type Limits, type StorageDefaults } from '../systems/storage.js';
import { distinctBytes } from './rules.js';
import type { KeptDigests } from './rules.js';
import type { BuiltManifestRow, StorageStore } from './store.js';

/** One measure against its limit (undefined: none). */
export interface Measure {
  used: number;
  limit: number | undefined;
}

/** A user's use of a system against the quotas, with what takes most. */
export interface QuotaUsage {
  system: { slug: string; displayName: string };
  images: Measure;
  builds: Measure;
  registryBytes: Measure;
  /** The user's images that hold builds (in the registry, or waiting and running), largest first. */
  largest: Array<{ imageId: number; name: string; builds: number; bytes: number }>;
  /** Days a superseded build stays in the registry on this system. */
  retentionDays: number;
}

export interface QuotaDeps {
  store: StorageStore;
  defaults: StorageDefaults;
  /** Reads the sizes of `owner`'s built manifests never measured (a registry read; failures leave them unmeasured). */
  measure: (owner: string) => Promise<unknown>;
  /** The digests images (`owner`'s, or everyone's) point at (storage/keptDigests.ts). */
  kept: (owner?: string) => Promise<KeptDigests>;
}

/** What is being added: a new image, a new build, or both. */
export interface Adding {
  images?: number;
  builds?: number;
}

/** The images that hold builds (in the registry, or waiting and running), largest first. */
function largestOf(manifests: BuiltManifestRow[], active: Map<number, { name: string; builds: number }>): QuotaUsage['largest'] {
  const byImage = new Map<number, { name: string; manifests: BuiltManifestRow[]; active: number }>();
  for (const m of manifests) {
    const entry = byImage.get(m.imageId);
    if (entry) entry.manifests.push(m);
    else byImage.set(m.imageId, { name: m.imageName, manifests: [m], active: 0 });
  }
  for (const [imageId, { name, builds }] of active) {
    const entry = byImage.get(imageId);
    if (entry) entry.active = builds;
    else byImage.set(imageId, { name, manifests: [], active: builds });
  }
  return [...byImage]
    .map(([imageId, entry]) => ({
      imageId,
      name: entry.name,
      builds: entry.manifests.length + entry.active,
      bytes: distinctBytes(entry.manifests.map((m) => m.blobs)),
    }))
    .sort((a, b) => b.bytes - a.bytes || b.builds - a.builds);
}

export class Quotas {
  constructor(private readonly deps: QuotaDeps) {}

  /**
   * `owner`'s use of `system` (or, without an owner, everyone's), against
   * the limits in force. `measure`: read the sizes of their builds never
   * measured from the registry first (a refusal must count them; a page shows what is known).
   */
  async usage(system: System, owner?: string, options: { measure?: boolean } = {}): Promise<QuotaUsage> {
    const { store } = this.deps;
    await store.recordBuilds(owner === undefined ? {} : { owner });
    if (owner !== undefined && options.measure) await this.deps.measure(owner);
    const rules = storageRules(system.storage, this.deps.defaults);
    const limits: Limits = owner === undefined ? rules.system : rules.user;
    const [images, manifests, active] = await Promise.all([
      store.imageCount(system.slug, owner),
      this.deps.kept(owner).then((kept) => store.manifestsCounted(system.slug, kept, owner)),
      store.activeBuildsByImage(system.slug, owner),
    ]);
    const activeBuilds = [...active.values()].reduce((sum, a) => sum + a.builds, 0);
    return {
      system: { slug: system.slug, displayName: system.displayName },
      images: { used: images, limit: limits.images },
      builds: { used: manifests.length + activeBuilds, limit: limits.builds },
      registryBytes: { used: distinctBytes(manifests.map((m) => m.blobs)), limit: limits.registryBytes },
      largest: largestOf(manifests, active),
      retentionDays: Math.round((rules.retentionMs / 86_400_000) * 10) / 10,
    };
  }

  /**
   * Refuses (409, in words saying what to delete) a save or build on
   * `system` that would take `owner` or the system past a quota; nothing is
   * stored or queued before this passes.
   */
  async assertRoom(owner: string, system: System, adding: Adding): Promise<void> {
    const rules = storageRules(system.storage, this.deps.defaults);
    const building = (adding.builds ?? 0) > 0;
    const needsSystem = Object.values(rules.system).some((v) => v !== undefined);
    const needsUser = Object.values(rules.user).some((v) => v !== undefined);
    if (needsUser) refusal(await this.usage(system, owner, { measure: building }), adding, building, 'you');
    if (needsSystem) refusal(await this.usage(system), adding, building, 'system');
  }
}

/** Throws the refusal for the first quota `adding` would pass. */
function refusal(usage: QuotaUsage, adding: Adding, building: boolean, whose: 'you' | 'system'): void {
  const where = usage.system.displayName;
  const suggestions =
    whose === 'you' && usage.largest.length > 0
      ? ` Your images with builds there, largest first: ${usage.largest
          .slice(0, 3)
          .map((i) => `“${i.name}” (${i.builds} build${i.builds === 1 ? '' : 's'}, ${formatBytes(i.bytes)})`)
          .join(', ')}.`
      : '';
  const older = ` Builds no image runs any more are removed ${usage.retentionDays} days after a newer build of their image.`;
  const ask = whose === 'system' ? ' Or ask the hub admins for more room.' : '';
  const images = adding.images ?? 0;
  if (images > 0 && usage.images.limit !== undefined && usage.images.used + images > usage.images.limit) {
    throw quotaExceeded(
      whose === 'you'
        ? `You have ${usage.images.used} images on ${where}, the most one user may keep there (${usage.images.limit}). Delete an image you no longer need on My images, then try again.`
        : `All users together have ${usage.images.used} images on ${where}, the most the system holds (${usage.images.limit}). Delete an image you no longer need on My images, then try again.${ask}`,
      'system',
    );
  }
  const builds = adding.builds ?? 0;
  if (builds > 0 && usage.builds.limit !== undefined && usage.builds.used + builds > usage.builds.limit) {
    throw quotaExceeded(
      `${whose === 'you' ? 'Your images' : 'All users’ images'} on ${where} keep ${usage.builds.used} builds in the site registry (queued and running ones included), the most ${whose === 'you' ? 'one user may keep' : 'the system holds'} (${usage.builds.limit}). Delete an image you no longer need: its builds go with it.${suggestions}${older}${ask}`,
      'system',
    );
  }
  if (building && usage.registryBytes.limit !== undefined && usage.registryBytes.used >= usage.registryBytes.limit) {
    throw quotaExceeded(
      `${whose === 'you' ? 'Your built images' : 'All users’ built images'} on ${where} take ${formatBytes(usage.registryBytes.used)} in the site registry, and ${whose === 'you' ? 'one user may use' : 'the system holds'} ${formatBytes(usage.registryBytes.limit)}. Delete an image you no longer need: its builds go with it.${suggestions}${older}${ask}`,
      'system',
    );
  }
}
