/**
 * What a researcher may read of inventories: the one of an image of theirs
 * (the digest its newest check read), of a check of theirs, and the short
 * summaries their tiles show. Access as for the image itself: someone
 * else's image is 404.
 */
import type { CheckRow } from '../checks/store.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageService } from '../images/service.js';
import { canonicalName } from './pep440.js';
import type { Inventory } from './schema.js';
import { inventoryKey, type InventoryStore } from './store.js';

/** An image's inventory as the API answers it. */
export interface ImageInventory {
  imageId: number;
  /** The platform manifest's digest the newest check read; null before any check read one. */
  digest: string | null;
  platform: string | null;
  checkId: number | null;
  /** Null when the image has not been read since inventories are kept (a check records one). */
  inventory: Inventory | null;
}

export interface InventoryServiceDeps {
  store: Pick<InventoryStore, 'get' | 'getMany'>;
  images: Pick<ImageService, 'get'>;
  /** The newest check of each image (with its digest and platform). */
  checks: { latestFor(owner: string, imageIds: number[]): Promise<Map<number, CheckRow>> };
}

/**
 * The digest whose inventory a check may show: only a check that read the
 * whole image (passed or failed; layers are verified against their digests)
 * or reused such a result in the same scope. A check that ended in an
 * error may have been handed a manifest whose layers it never got: its
 * digest proves nothing, and another user's inventory of that digest is
 * not theirs to read.
 */
export function checkedDigestOf(check: Pick<CheckRow, 'status' | 'digest' | 'manifestDigest'>): string | null {
  if (check.status !== 'passed' && check.status !== 'failed') return null;
  return check.manifestDigest ?? check.digest;
}

export class InventoryService {
  constructor(private readonly deps: InventoryServiceDeps) {}

  /** The inventory of `owner`'s image `id`; 404 as for the image when it is not the actor's to read. */
  async forImage(actor: HubIdentity, owner: string, id: number): Promise<ImageInventory> {
    await this.deps.images.get(actor, owner, id);
    const check = (await this.deps.checks.latestFor(owner, [id])).get(id);
    const digest = check ? checkedDigestOf(check) : null;
    if (!check || !digest) return { imageId: id, digest: null, platform: null, checkId: check?.id ?? null, inventory: null };
    return {
      imageId: id,
      digest,
      platform: check.platform,
      checkId: check.id,
      inventory: (await this.deps.store.get(digest, check.platform)) ?? null,
    };
  }

  /** The inventory of the digest a check read (its page: the caller has read the check). */
  async forCheck(check: CheckRow): Promise<Inventory | null> {
    const digest = checkedDigestOf(check);
    return digest ? ((await this.deps.store.get(digest, check.platform)) ?? null) : null;
  }

  /** "Python 3.11 · 212 packages · JupyterLab 4.2" for each of `owner`'s images that has an inventory (tiles: the owner's list). */
  async summaries(owner: string, ids: number[]): Promise<Map<number, string>> {
    const checks = await this.deps.checks.latestFor(owner, ids);
    const keys = new Map<number, { digest: string; platform: string }>();
    for (const [id, check] of checks) {
      const digest = checkedDigestOf(check);
      if (digest) keys.set(id, { digest, platform: check.platform });
    }
    const inventories = await this.deps.store.getMany([...keys.values()]);
    const out = new Map<number, string>();
    for (const [id, key] of keys) {
      const inventory = inventories.get(inventoryKey(key));
      if (inventory) out.set(id, inventorySummary(inventory));
    }
    return out;
  }
}

/** Two parts of a version: `4.2.5` -> `4.2`. */
function short(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

/** The tile's line: Python, how many packages, the Jupyter front end. */
export function inventorySummary(inventory: Inventory): string {
  const parts: string[] = [];
  if (inventory.python) parts.push(`Python ${short(inventory.python.version)}`);
  // A conda package that pip lists too is counted once.
  const pipNames = new Set(inventory.pythonPackages.map((p) => canonicalName(p.name)));
  const count = inventory.pythonPackages.length + inventory.condaPackages.filter((c) => !pipNames.has(canonicalName(c.name))).length;
  parts.push(`${count} package${count === 1 ? '' : 's'}`);
  if (inventory.jupyter.jupyterlab) parts.push(`JupyterLab ${short(inventory.jupyter.jupyterlab)}`);
  else if (inventory.jupyter.notebook) parts.push(`Notebook ${short(inventory.jupyter.notebook)}`);
  if (inventory.cuda.cuda) parts.push(`CUDA ${short(inventory.cuda.cuda)}`);
  return parts.join(' · ');
}
