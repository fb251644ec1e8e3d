/**
 * Layer indexes kept by the layer's digest, so that an image that shares its
 * base layers with one already checked reads only its own new layers.
 * A digest names its content for good, so entries never go stale. A
 * manifest only names its layers, though: an index read with someone's
 * credentials is reused only in the same scope (repository and access), one
 * read without credentials by anyone.
 */
import type { LayerIndex } from '../inspect/layerIndex.js';

/** Where an index may be reused: null for a layer read without credentials, else its repository and access. */
export type LayerScope = string | null;

export interface LayerIndexCache {
  /** The index of `digest` if it was read in `scope`, or without credentials. */
  get(digest: string, scope: LayerScope): Promise<LayerIndex | undefined>;
  /** Keeps an index; one anyone may reuse stays so. */
  put(digest: string, scope: LayerScope, index: LayerIndex): Promise<void>;
}

/** Whether an index kept for `stored` may serve a reader in `scope`. */
export function mayReuse(stored: LayerScope, scope: LayerScope): boolean {
  return stored === null || stored === scope;
}

/** In memory, the most recently used `maxEntries` indexes. */
export function memoryLayerCache(maxEntries = 256): LayerIndexCache {
  const entries = new Map<string, { index: LayerIndex; scope: LayerScope }>();
  return {
    async get(digest, scope) {
      const hit = entries.get(digest);
      if (!hit || !mayReuse(hit.scope, scope)) return undefined;
      entries.delete(digest);
      entries.set(digest, hit);
      return hit.index;
    },
    async put(digest, scope, index) {
      const kept = entries.get(digest);
      entries.delete(digest);
      entries.set(digest, { index, scope: kept?.scope === null ? null : scope });
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
    async get(digest, scope) {
      const hit = await front.get(digest, scope);
      if (hit) return hit;
      const stored = await back.get(digest, scope);
      if (stored) await front.put(digest, scope, stored);
      return stored;
    },
    async put(digest, scope, index) {
      await front.put(digest, scope, index);
      await back.put(digest, scope, index);
    },
  };
}
