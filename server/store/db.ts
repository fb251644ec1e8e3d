/**
 * Opens the database: SQLite (better-sqlite3, WAL) by default, PostgreSQL when
 * the URL says postgres://. Only store modules import knex.
 */
import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { AppError } from '../errors.js';

export type { Knex };

/** Which engine a URL selects. */
function databaseKind(url: string): 'sqlite' | 'postgres' {
  return url.startsWith('postgres') ? 'postgres' : 'sqlite';
}

/** `sqlite:///abs/file`, `sqlite://abs/file` or `sqlite:relative/file` to a file name. */
export function sqliteFilename(url: string): string {
  const rest = url.replace(/^sqlite:(\/\/)?/, '');
  return rest === ':memory:' ? rest : path.resolve(rest);
}

/** Creates a knex instance for `url`; the SQLite file's folder is created if needed. */
export function openDatabase(url: string): Knex {
  if (databaseKind(url) === 'postgres') {
    return knexFactory({
      client: 'pg',
      connection: url,
      // Error messages carry the SQL with placeholders, never the bound values (see the SQLite case).
      compileSqlOnError: false,
      pool: { min: 0, max: 10 },
      // A PostgreSQL restart must not leave us holding dead connections.
      acquireConnectionTimeout: 10_000,
    });
  }
  const filename = sqliteFilename(url);
  if (filename !== ':memory:') fs.mkdirSync(path.dirname(filename), { recursive: true });
  return knexFactory({
    client: 'better-sqlite3',
    connection: { filename },
    // By default knex writes the bound values into a failed query's message, which ends up in
    // logs: a session's CSRF token, say. The SQL with its placeholders is enough to debug.
    compileSqlOnError: false,
    useNullAsDefault: true,
    pool: {
      // One writer at a time is what SQLite allows anyway; WAL lets readers go on.
      min: 1,
      max: 1,
      afterCreate(conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) {
        conn.pragma('journal_mode = WAL');
        conn.pragma('synchronous = NORMAL');
        conn.pragma('foreign_keys = ON');
        conn.pragma('busy_timeout = 5000');
        cachePreparedStatements(conn);
        done(null, conn);
      },
    },
  });
}

interface SqliteConnection {
  pragma(sql: string): unknown;
  prepare(sql: string): unknown;
}

/** Starts the SQL text of a read whose rows come back as arrays (see {@link selectArrays}). */
const ARRAY_ROWS = '/* rows as arrays */ ';

/**
 * Runs a SELECT whose rows come back as arrays of values in the select's
 * order rather than as objects: a wide joined read otherwise builds an
 * object with a key per column for every row. On the app's own connection:
 * SQLite's prepared statement for this text is put in raw mode,
 * PostgreSQL's driver is asked for `rowMode: 'array'`.
 */
export async function selectArrays(db: Knex, sql: string, bindings: readonly Knex.RawBinding[]): Promise<unknown[][]> {
  const result = (await db.raw(ARRAY_ROWS + sql, bindings).options({ rowMode: 'array' })) as unknown[][] | { rows: unknown[][] };
  return Array.isArray(result) ? result : result.rows;
}

const STATEMENT_CACHE_SIZE = 500;

/**
 * knex prepares every query again, which costs more than running it on a
 * small table. A statement runs to completion synchronously in better-sqlite3,
 * so one prepared statement per SQL text can serve every later query; SQLite
 * re-prepares it by itself after a schema change.
 */
function cachePreparedStatements(conn: SqliteConnection): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new Map<string, unknown>();
  conn.prepare = (sql: string) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      if (sql.startsWith(ARRAY_ROWS)) (statement as { raw(on: boolean): unknown }).raw(true);
      // Map keeps insertion order: drop the oldest when full (ad-hoc SQL such as IN lists varies).
      if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      cache.set(sql, statement);
    }
    return statement;
  };
}

/** SQLSTATE classes and socket errors that mean "the server is not there right now", not "the query is wrong". */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
]);

/**
 * Whether an error means the database is unreachable or restarting (a
 * refused or dropped connection, a server shutting down, no free
 * connection in time) rather than a fault in the query.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 5;
    e = e.cause as typeof e, depth++
  ) {
    const code = typeof e.code === 'string' ? e.code : '';
    if (UNAVAILABLE_CODES.has(code) || code.startsWith('08')) return true;
    if (e.name === 'KnexTimeoutError') return true;
    if (
      typeof e.message === 'string' &&
      /Connection terminated|connection is closed|Client has encountered a connection error/i.test(e.message)
    )
      return true;
  }
  return false;
}

/** What a user is told while the database is away. */
export const DATABASE_UNAVAILABLE_MESSAGE =
  'The custom-images database cannot be reached at the moment (it may be restarting). Nothing you saved is lost; try again in a minute.';

/** Answers whether the database takes a query; used by /healthz. */
export async function pingDatabase(db: Knex): Promise<void> {
  try {
    await db.raw('select 1');
  } catch (cause) {
    throw new AppError('database_unavailable', DATABASE_UNAVAILABLE_MESSAGE, { cause, expose: true });
  }
}
