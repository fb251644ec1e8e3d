/**
 * Runs the migrations in migrations/ through knex, from a fixed list rather
 * than a folder scan, so that the same code runs from TypeScript (tests) and
 * from the compiled dist/ alike.
 */
import type { Knex } from 'knex';
import { migrations, type Migration } from '../../migrations/index.js';

const source: Knex.MigrationSource<Migration> = {
  getMigrations: async () => migrations,
  getMigrationName: (migration) => migration.name,
  getMigration: async (migration) => migration,
};

const CONFIG: Knex.MigratorConfig = { migrationSource: source, tableName: 'knex_migrations' };
const LOCK_TABLE = 'knex_migrations_lock';

/**
 * Applies every pending migration; returns the names applied. Replicas that
 * start together take turns: knex's lock makes the others wait and retry, and
 * so does losing the race to create knex's own tables on an empty database.
 * That race can also leave knex's lock table with two rows, which no replica
 * could ever lock again; a retry removes the extra rows first.
 */
export async function migrateLatest(db: Knex, waitMs = 60_000): Promise<string[]> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const [, applied] = (await db.migrate.latest(CONFIG)) as [number, string[]];
      return applied;
    } catch (err) {
      const message = err instanceof Error ? err.message : '';
      // Knex's lock guards the migrations, not the creation of its own tables: replicas starting
      // together on an empty database race there (PostgreSQL: a duplicate key of pg_type).
      const locked = /already locked/i.test(message);
      const racedOnKnexTables = /knex_migrations/.test(message) && /already exists|duplicate key/i.test(message);
      if (!(locked || racedOnKnexTables) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
      if (locked) await removeExtraLockRows(db);
    }
  }
}

/**
 * Knex inserts its one lock row when it finds the table empty, without a
 * lock of its own: replicas that looked at the same time each insert one. A
 * lock is then an UPDATE that must touch exactly one row, so with two it
 * fails for everyone, for good. Only unlocked rows past the first go, so a
 * lock that is really held is never taken away.
 */
async function removeExtraLockRows(db: Knex): Promise<void> {
  if (!(await db.schema.hasTable(LOCK_TABLE))) return;
  const first = db(LOCK_TABLE).min('index');
  await db(LOCK_TABLE).where('is_locked', 0).where('index', '>', first).delete();
}

/** Rolls back every migration; returns the names rolled back. */
export async function migrateRollbackAll(db: Knex): Promise<string[]> {
  const [, rolledBack] = (await db.migrate.rollback(CONFIG, true)) as [number, string[]];
  return rolledBack;
}

/** The names of applied and pending migrations. */
export async function migrationStatus(db: Knex): Promise<{ applied: string[]; pending: string[] }> {
  const [applied, pending] = (await db.migrate.list(CONFIG)) as [Array<{ name: string }>, Migration[]];
  return { applied: applied.map((m) => m.name), pending: pending.map((m) => m.name) };
}
