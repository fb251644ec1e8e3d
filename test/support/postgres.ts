/**
 * A fresh database on the real PostgreSQL server that .ci/run starts
 * (TEST_POSTGRES_URL points at a superuser connection to it).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';

/** The admin URL; a missing server is a failure, never a skip. */
export function postgresAdminUrl(): string {
  const url = process.env.TEST_POSTGRES_URL;
  if (!url) throw new Error('TEST_POSTGRES_URL is not set: run the tests through .ci/run, which starts PostgreSQL');
  return url;
}

/** Creates an empty database and returns its URL and a function that drops it. */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const adminUrl = postgresAdminUrl();
  const name = `ci_test_${randomBytes(6).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  await admin.destroy();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      const a = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
      await a.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.destroy();
    },
  };
}

/** A PostgreSQL server of a test's own, so that it can be stopped and started without disturbing other tests. */
export interface PrivatePostgres {
  url: string;
  start(): void;
  /** A fast shutdown: sessions are cut off, as in a restart by an admin or a failover. */
  stop(): void;
  destroy(): void;
}

/** initdb and start a cluster in a temporary folder, as the postgres user (Debian's binaries). */
export async function startPrivatePostgres(port: number): Promise<PrivatePostgres> {
  const versions = fs.readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b));
  const bin = `/usr/lib/postgresql/${versions.at(-1) ?? ''}/bin`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-pg-'));
  fs.chmodSync(dir, 0o777);
  const data = path.join(dir, 'data');
  const asPostgres = (args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', ...args], { stdio: 'pipe', cwd: dir });
  asPostgres([`${bin}/initdb`, '-D', data, '-A', 'trust', '-U', 'ci', '--no-sync']);
  const start = () => {
    asPostgres([
      `${bin}/pg_ctl`,
      '-D',
      data,
      '-l',
      path.join(dir, 'log'),
      '-w',
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      'start',
    ]);
  };
  start();
  return {
    url: `postgres://ci@127.0.0.1:${port}/postgres`,
    start,
    stop: () => asPostgres([`${bin}/pg_ctl`, '-D', data, '-m', 'fast', '-w', 'stop']),
    destroy() {
      try {
        asPostgres([`${bin}/pg_ctl`, '-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // not running
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
