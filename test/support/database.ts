/** An empty database with the service's tables, on either engine, for tests that run on both. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { createTestDatabase } from './postgres.js';

export type Engine = 'SQLite' | 'PostgreSQL';

/**
 * Opens and migrates a fresh database for the running test; when the test
 * ends, the pool is closed and the database removed (dropped on PostgreSQL).
 */
export async function migratedDatabase(engine: Engine): Promise<Knex> {
  let db: Knex;
  let remove: () => Promise<void> | void;
  if (engine === 'PostgreSQL') {
    const created = await createTestDatabase();
    db = openDatabase(created.url);
    remove = () => created.drop();
  } else {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-db-'));
    db = openDatabase(`sqlite://${path.join(dir, 'db.sqlite')}`);
    remove = () => fs.rmSync(dir, { recursive: true, force: true });
  }
  onTestFinished(async () => {
    await db.destroy();
    await remove();
  });
  await migrateLatest(db);
  return db;
}
