/** The launch audit's group commit, on real SQLite and PostgreSQL. */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../server/audit/store.js';
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
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-audit-'));
  const db = openDatabase(`sqlite://${path.join(dir, 'db.sqlite')}`);
  cleanups.push(() => db.destroy());
  return db;
}

const entry = (i: number) => ({ actor: `u${i}`, actorKind: 'user' as const, action: 'image.launch', targetType: 'image', targetId: String(i), details: { n: i } });

describe.each(['SQLite', 'PostgreSQL'])('AuditLog on %s', (engine) => {
  it('stores every entry of a burst once, in a few statements, before answering each caller', async () => {
    const db = await database(engine);
    await migrateLatest(db);
    let inserts = 0;
    db.on('query', (q: { sql: string }) => {
      if (/^insert into .audit./i.test(q.sql)) inserts++;
    });
    const log = new AuditLog(db);
    const now = new Date();
    await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        await log.append(entry(i), now);
        // Resolved means stored.
        const row = (await db('audit').where({ target_id: String(i) }).first()) as { actor: string } | undefined;
        expect(row?.actor).toBe(`u${i}`);
      }),
    );
    const rows = (await db('audit').select('target_id')) as Array<{ target_id: string }>;
    expect(rows.map((r) => Number(r.target_id)).sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(inserts).toBeLessThanOrEqual(5);
  });

  it('fails every caller of a group whose INSERT fails, and goes on with the next group', async () => {
    const db = await database(engine);
    await migrateLatest(db);
    const log = new AuditLog(db);
    const now = new Date();
    // An entry the table refuses (NOT NULL) spoils its whole group: one statement, all or nothing.
    const spoiled = { ...entry(1), actor: null as unknown as string };
    const results = await Promise.allSettled([log.append(entry(0), now), log.append(spoiled, now)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const [count] = (await db('audit').count({ n: '*' })) as Array<{ n: number | string }>;
    expect(Number(count?.n)).toBe(0);
    await log.append(entry(2), now);
    expect(((await db('audit').where({ target_id: '2' })) as unknown[]).length).toBe(1);
  });
});
