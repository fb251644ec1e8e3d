/** What a failed query says about itself: enough to debug, never the values it carried. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { createTestDatabase } from '../support/postgres.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

async function database(engine: string): Promise<Knex> {
  if (engine === 'PostgreSQL') {
    const created = await createTestDatabase();
    const db = openDatabase(created.url);
    cleanups.push(async () => {
      await db.destroy();
      await created.drop();
    });
    return db;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-dberr-'));
  const db = openDatabase(`sqlite://${path.join(dir, 'db.sqlite')}`);
  cleanups.push(() => db.destroy());
  return db;
}

describe.each(['SQLite', 'PostgreSQL'])('a failed query on %s', (engine) => {
  it('names its SQL but not the values bound to it', async () => {
    const db = await database(engine);
    await migrateLatest(db);
    const secret = 'csrf-token-5f2b9c1e7a';
    // A session row without its required expiry: refused by the NOT NULL constraint.
    const err = (await db('sessions')
      .insert({ sid: 'abc', sess: JSON.stringify({ csrfToken: secret }), expired: null })
      .then(() => undefined, (e: unknown) => e)) as Error | undefined;
    expect(err).toBeInstanceOf(Error);
    expect(err?.message).toMatch(/insert into .sessions./);
    expect(err?.message).not.toContain(secret);
  });
});
