/** A database for one test, on either engine (or SQLite in memory), removed when the test ends. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { createTestDatabase } from './postgres.js';

export type Engine = 'SQLite' | 'PostgreSQL';

/**
 * Opens a fresh, empty database for the running test; when the test ends,
 * the pool is closed and the database removed (dropped on PostgreSQL).
 */
export async function testDatabase(kind: Engine | 'SQLite in memory'): Promise<Knex> {
  let db: Knex;
  let remove = (): Promise<void> | void => {};
  if (kind === 'PostgreSQL') {
    const created = await createTestDatabase();
    db = openDatabase(created.url);
    remove = () => created.drop();
  } else if (kind === 'SQLite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-db-'));
    db = openDatabase(`sqlite://${path.join(dir, 'db.sqlite')}`);
    remove = () => fs.rmSync(dir, { recursive: true, force: true });
  } else {
    db = openDatabase('sqlite::memory:');
  }
  onTestFinished(async () => {
    await db.destroy();
    await remove();
  });
  return db;
}

/** {@link testDatabase} with the service's tables. */
export async function migratedDatabase(engine: Engine): Promise<Knex> {
  const db = await testDatabase(engine);
  await migrateLatest(db);
  return db;
}

/**
 * A fresh database for a whole block of tests (opened in beforeAll), on
 * either engine; `close` (in afterAll) closes the pool and removes it.
 */
export async function openTestDatabase(kind: Engine): Promise<{ db: Knex; close(): Promise<void> }> {
  if (kind === 'PostgreSQL') {
    const created = await createTestDatabase();
    const db = openDatabase(created.url);
    return {
      db,
      async close() {
        await db.destroy();
        await created.drop();
      },
    };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-db-'));
  const db = openDatabase(`sqlite://${path.join(dir, 'db.sqlite')}`);
  return {
    db,
    async close() {
      await db.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
