/**
 * Resolves hub tokens sent to the JSON API, with a short cache, as
 * JupyterHub's own HubAuth does: repeated calls from the spawner hook cost one
 * hub round trip per cache period, and a refused token is never cached.
 */
import { createHash } from 'node:crypto';
import type { HubClient } from './client.js';
import type { HubIdentity } from './identity.js';

export interface TokenAuthOptions {
  hub: Pick<HubClient, 'identify'>;
  /** How long a positive answer is kept; 0 disables the cache. */
  cacheSeconds: number;
  /** Bounds memory when many distinct tokens arrive. */
  maxEntries?: number;
  /** Swapped in tests. */
  now?: () => number;
}

/** Resolves a token to its owner, or `null` when the hub refuses it. */
export type TokenAuthenticator = (token: string) => Promise<HubIdentity | null>;

/** Creates a caching {@link TokenAuthenticator}. */
export function createTokenAuthenticator(options: TokenAuthOptions): TokenAuthenticator {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  const ttlMs = options.cacheSeconds * 1000;
  // Keyed by a hash so that the cache itself holds no usable token.
  const cache = new Map<string, { identity: HubIdentity; expires: number }>();
  const pending = new Map<string, Promise<HubIdentity | null>>();

  return async (token) => {
    const key = createHash('sha256').update(token).digest('base64url');
    const hit = cache.get(key);
    if (hit && hit.expires > now()) return hit.identity;
    if (hit) cache.delete(key);

    // Concurrent requests with one token share one hub lookup.
    let lookup = pending.get(key);
    if (!lookup) {
      lookup = options.hub.identify(token).finally(() => pending.delete(key));
      pending.set(key, lookup);
    }
    const identity = await lookup;
    if (identity && ttlMs > 0) {
      if (cache.size >= maxEntries) {
        // Map keeps insertion order: drop the oldest entry.
        const oldest = cache.keys().next().value;
        if (oldest !== undefined) cache.delete(oldest);
      }
      cache.set(key, { identity, expires: now() + ttlMs });
    }
    return identity;
  };
}
