/**
 * Layer indexes kept by the layer's digest, so that an image that shares its
 * base layers with one already checked reads only its own new layers.
 * A digest names its content for good, so entries never go stale.
 */
import type { LayerIndex } from '../inspect/layerIndex.js';

export interface LayerIndexCache {
  get(digest: string): Promise<LayerIndex | undefined>;
  put(digest: string, index: LayerIndex): Promise<void>;
}

/** In memory, the most recently used `maxEntries` indexes. */
export function memoryLayerCache(maxEntries = 256): LayerIndexCache {
  const entries = new Map<string, LayerIndex>();
  return {
    async get(digest) {
      const hit = entries.get(digest);
      if (hit) {
        entries.delete(digest);
        entries.set(digest, hit);
      }
      return hit;
    },
    async put(digest, index) {
      entries.delete(digest);
      entries.set(digest, index);
      while (entries.size > maxEntries) {
        const oldest = entries.keys().next().value;
        if (oldest === undefined) break;
        entries.delete(oldest);
      }
    },
  };
}

/** Memory in front of a slower, shared store (the database). */
export function tieredLayerCache(front: LayerIndexCache, back: LayerIndexCache): LayerIndexCache {
  return {
    async get(digest) {
      const hit = await front.get(digest);
      if (hit) return hit;
      const stored = await back.get(digest);
      if (stored) await front.put(digest, stored);
      return stored;
    },
    async put(digest, index) {
      await front.put(digest, index);
      await back.put(digest, index);
    },
  };
}
