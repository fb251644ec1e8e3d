/**
 * What a researcher may read of inventories: the one of an image of theirs
 * (the digest its newest check read), of a check of theirs, and the short
 * summaries their tiles show. Access as for the image itself: someone
 * else's image is 404.
 */
import type { CheckRow } from '../checks/store.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageService } from '../images/service.js';
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
  store: Pick<InventoryStore, 'get' | 'summariesMany'>;
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
    // The line kept beside each inventory: a page of tiles decompresses none.
    const lines = await this.deps.store.summariesMany([...keys.values()]);
    const out = new Map<number, string>();
    for (const [id, key] of keys) {
      const line = lines.get(inventoryKey(key));
      if (line !== undefined) out.set(id, line);
    }
    return out;
  }
}
