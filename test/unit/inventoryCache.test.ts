/** Inventories kept decoded for revisions: read once while kept, the least recently used out, a missing one asked again. */
import { describe, expect, it } from 'vitest';
import { emptyInventory, type Inventory } from '../../server/inventory/schema.js';
import { cachedInventories } from '../../server/revisions/inventoryCache.js';

/** A source that counts its reads and knows the digests in `known`. */
function source(known: Set<string>) {
  const reads: string[] = [];
  return {
    reads,
    get: async (digest: string): Promise<Inventory | undefined> => {
      reads.push(digest);
      return known.has(digest) ? emptyInventory() : undefined;
    },
  };
}

describe('cachedInventories', () => {
  it('reads an inventory once while it is kept, and the least recently used goes first', async () => {
    const from = source(new Set(['a', 'b', 'c']));
    const cache = cachedInventories(from, 2);
    await cache.get('a', 'linux/amd64');
    await cache.get('b', 'linux/amd64');
    await cache.get('a', 'linux/amd64');
    await cache.get('c', 'linux/amd64'); // b goes: a was used after it
    await cache.get('a', 'linux/amd64');
    await cache.get('b', 'linux/amd64');
    expect(from.reads).toEqual(['a', 'b', 'c', 'b']);
  });

  it('keeps apart platforms, and never keeps a missing inventory (a check may record it next)', async () => {
    const known = new Set<string>();
    const from = source(known);
    const cache = cachedInventories(from, 4);
    expect(await cache.get('a', 'linux/amd64')).toBeUndefined();
    known.add('a');
    expect(await cache.get('a', 'linux/amd64')).toBeDefined();
    await cache.get('a', 'linux/arm64');
    await cache.get('a', 'linux/amd64');
    expect(from.reads).toEqual(['a', 'a', 'a']);
  });

  it('with a size of 0 reads every time', async () => {
    const from = source(new Set(['a']));
    const cache = cachedInventories(from, 0);
    await cache.get('a', 'linux/amd64');
    await cache.get('a', 'linux/amd64');
    expect(from.reads).toEqual(['a', 'a']);
  });
});
