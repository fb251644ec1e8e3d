/** The launch audit's group commit, on real SQLite and PostgreSQL. */
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../server/audit/store.js';
import { migratedDatabase, type Engine } from '../support/database.js';

const entry = (i: number) => ({
  actor: `u${i}`,
  actorKind: 'user' as const,
  action: 'image.launch',
  targetType: 'image',
  targetId: String(i),
  details: { n: i },
});

describe.each<Engine>(['SQLite', 'PostgreSQL'])('AuditLog on %s', (engine) => {
  it('stores every entry of a burst once, in a few statements, before answering each caller', async () => {
    const db = await migratedDatabase(engine);
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
        const row = (await db('audit')
          .where({ target_id: String(i) })
          .first()) as { actor: string } | undefined;
        expect(row?.actor).toBe(`u${i}`);
      }),
    );
    const rows = (await db('audit').select('target_id')) as Array<{ target_id: string }>;
    expect(rows.map((r) => Number(r.target_id)).sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(inserts).toBeLessThanOrEqual(5);
  });

  it('fails every caller of a group whose INSERT fails, and goes on with the next group', async () => {
    const db = await migratedDatabase(engine);
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
