import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest, migrateRollbackAll, migrationStatus } from '../../server/store/migrate.js';
import { createTestDatabase } from '../support/postgres.js';

const names = migrations.map((m) => m.name);

async function tables(db: Knex): Promise<string[]> {
  const client = db.client.config.client as string;
  const rows =
    client === 'pg'
      ? ((await db.raw(`select tablename as name from pg_tables where schemaname = 'public'`)) as { rows: Array<{ name: string }> }).rows
      : ((await db.raw(`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`)) as Array<{ name: string }>);
  return rows
    .map((r) => r.name)
    .filter((n) => !n.startsWith('knex_'))
    .sort();
}

async function upAndDown(db: Knex): Promise<void> {
  expect(await migrateLatest(db)).toEqual(names);
  expect(await tables(db)).toEqual([
    'audit',
    'builds',
    'checks',
    'credentials',
    'deployment',
    'engine_images',
    'forecasts',
    'image_shares',
    'images',
    'inventories',
    'layer_indexes',
    'registry_credentials',
    'replicas',
    'revisions',
    'sessions',
    'systems',
  ]);
  expect((await migrationStatus(db)).pending).toEqual([]);
  // One deployment id, created with the database.
  const [deployment, ...more] = (await db('deployment').select('id')) as Array<{ id: string }>;
  expect(deployment?.id).toMatch(/^[0-9a-f-]{36}$/);
  expect(more).toEqual([]);
  // Running again changes nothing.
  expect(await migrateLatest(db)).toEqual([]);
  expect(await db('deployment').select('id')).toEqual([deployment]);
  expect(await migrateRollbackAll(db)).toEqual([...names].reverse());
  expect(await tables(db)).toEqual([]);
  expect(await migrateLatest(db)).toEqual(names);
}

describe('migrations', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('go up and down on SQLite, in WAL mode', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-mig-'));
    const db = openDatabase(`sqlite://${dir}/db.sqlite`);
    cleanups.push(async () => {
      await db.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    await upAndDown(db);
    const [mode] = (await db.raw('pragma journal_mode')) as Array<{ journal_mode: string }>;
    expect(mode?.journal_mode).toBe('wal');
  });

  it('go up and down on PostgreSQL', async () => {
    const pg = await createTestDatabase();
    const db = openDatabase(pg.url);
    cleanups.push(async () => {
      await db.destroy();
      await pg.drop();
    });
    await upAndDown(db);
  });

  it('replicas starting at once on an empty PostgreSQL database all start, and migrate it once', async () => {
    // Five fresh databases, three replicas each: the race for knex's own tables is lost by someone in most rounds.
    for (let round = 0; round < 5; round++) {
      const pg = await createTestDatabase();
      const replicas = [openDatabase(pg.url), openDatabase(pg.url), openDatabase(pg.url)];
      cleanups.push(async () => {
        for (const db of replicas) await db.destroy();
        await pg.drop();
      });
      const applied = await Promise.all(replicas.map((db) => migrateLatest(db)));
      expect(applied.flat().sort()).toEqual([...names].sort());
      expect(await migrationStatus(replicas[0]!)).toEqual({ applied: names, pending: [] });
      expect(await replicas[0]!('knex_migrations_lock').select('is_locked')).toEqual([{ is_locked: 0 }]);
    }
  }, 120_000);

  // The state that race leaves when two replicas each insert knex's lock row: every later
  // lock touched two rows and failed, so every start waited out its minute and gave up.
  it.each(['SQLite', 'PostgreSQL'])('start on %s when an earlier race left two lock rows', async (kind) => {
    let db: Knex;
    if (kind === 'SQLite') {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-mig-'));
      db = openDatabase(`sqlite://${dir}/db.sqlite`);
      cleanups.push(async () => {
        await db.destroy();
        fs.rmSync(dir, { recursive: true, force: true });
      });
    } else {
      const pg = await createTestDatabase();
      db = openDatabase(pg.url);
      cleanups.push(async () => {
        await db.destroy();
        await pg.drop();
      });
    }
    await migrationStatus(db); // creates knex's tables and its one lock row
    await db('knex_migrations_lock').insert({ is_locked: 0 });

    expect(await migrateLatest(db, 10_000)).toEqual(names);
    expect(await db('knex_migrations_lock').select('is_locked')).toEqual([{ is_locked: 0 }]);
    expect(await migrationStatus(db)).toEqual({ applied: names, pending: [] });
  });
});
