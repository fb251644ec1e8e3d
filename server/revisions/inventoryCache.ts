/**
 * Inventories as revisions read them, the newest few kept decoded in memory:
 * an inventory belongs to a digest and never changes, so a diff or export
 * asked again (the same two revisions, a page reloaded) skips reading,
 * decompressing and parsing it. Bounded by count, least recently used out.
 */
import type { Inventory } from '../inventory/schema.js';

export interface InventorySource {
  get(digest: string, platform: string): Promise<Inventory | undefined>;
}

/** `source` with the `size` most recently read inventories kept; a missing one is asked for again next time. */
export function cachedInventories(source: InventorySource, size: number): InventorySource {
  const kept = new Map<string, Promise<Inventory | undefined>>();
  return {
    get(digest, platform) {
      const key = `${digest} ${platform}`;
      const hit = kept.get(key);
      if (hit) {
        // Most recently used last.
        kept.delete(key);
        kept.set(key, hit);
        return hit;
      }
      const read = source.get(digest, platform);
      if (size <= 0) return read;
      kept.set(key, read);
      // Neither a failed read nor a missing inventory (a check may record it any moment) is kept.
      read.then(
        (inventory) => {
          if (!inventory && kept.get(key) === read) kept.delete(key);
        },
        () => {
          if (kept.get(key) === read) kept.delete(key);
        },
      );
      while (kept.size > size) kept.delete(kept.keys().next().value as string);
      return read;
    },
  };
}
