/** What a failed query says about itself: enough to debug, never the values it carried. */
import { describe, expect, it } from 'vitest';
import { migratedDatabase, type Engine } from '../support/database.js';

describe.each<Engine>(['SQLite', 'PostgreSQL'])('a failed query on %s', (engine) => {
  it('names its SQL but not the values bound to it', async () => {
    const db = await migratedDatabase(engine);
    const secret = 'csrf-token-5f2b9c1e7a';
    // A session row without its required expiry: refused by the NOT NULL constraint.
    const err = (await db('sessions')
      .insert({ sid: 'abc', sess: JSON.stringify({ csrfToken: secret }), expired: null })
      .then(
        () => undefined,
        (e: unknown) => e,
      )) as Error | undefined;
    expect(err).toBeInstanceOf(Error);
    expect(err?.message).toMatch(/insert into .sessions./);
    expect(err?.message).not.toContain(secret);
  });
});
