import { describe, expect, it } from 'vitest';
import type { HubClient } from '../../server/hub/client.js';
import type { HubIdentity } from '../../server/hub/identity.js';
import { createTokenAuthenticator } from '../../server/hub/tokenAuth.js';

const alice: HubIdentity = { kind: 'user', name: 'alice', admin: false, groups: [], scopes: ['self'] };

/** A hub that knows one token and counts lookups (the cache logic is what is under test). */
function countingHub(known: Record<string, HubIdentity>) {
  const calls: string[] = [];
  const hub: Pick<HubClient, 'identify'> = {
    identify: async (token) => {
      calls.push(token);
      return known[token] ?? null;
    },
  };
  return { hub, calls };
}

describe('createTokenAuthenticator', () => {
  it('asks the hub once per token within the cache period, again after it', async () => {
    let now = 0;
    const { hub, calls } = countingHub({ good: alice });
    const auth = createTokenAuthenticator({ hub, cacheSeconds: 300, now: () => now });
    expect(await auth('good')).toEqual(alice);
    expect(await auth('good')).toEqual(alice);
    expect(calls).toHaveLength(1);
    now += 301_000;
    await auth('good');
    expect(calls).toHaveLength(2);
  });

  it('never caches a refused token as valid', async () => {
    const { hub, calls } = countingHub({});
    const auth = createTokenAuthenticator({ hub, cacheSeconds: 300 });
    expect(await auth('bad')).toBeNull();
    expect(await auth('bad')).toBeNull();
    expect(calls).toHaveLength(2);
  });

  it('shares one lookup between concurrent requests', async () => {
    const { hub, calls } = countingHub({ good: alice });
    const auth = createTokenAuthenticator({ hub, cacheSeconds: 300 });
    await Promise.all([auth('good'), auth('good'), auth('good')]);
    expect(calls).toHaveLength(1);
  });

  it('keeps at most maxEntries tokens', async () => {
    const known = Object.fromEntries(['a', 'b', 'c'].map((t) => [t, { ...alice, name: t }]));
    const { hub, calls } = countingHub(known);
    const auth = createTokenAuthenticator({ hub, cacheSeconds: 300, maxEntries: 2 });
    await auth('a');
    await auth('b');
    await auth('c'); // evicts a
    await auth('a');
    expect(calls).toEqual(['a', 'b', 'c', 'a']);
  });
});
