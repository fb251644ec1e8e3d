import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { migrations, type Migration } from '../../migrations/index.js';
import { inputsAsRequest } from '../../server/builds/inputs.js';
import { BuildStore } from '../../server/builds/store.js';
import { ImageStore } from '../../server/images/store.js';
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
    'image_shares',
    'images',
    'layer_indexes',
    'registry_credentials',
    'replicas',
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

  // 015 moves the input columns of every existing build into one JSON column: old builds stay shown and rebuildable.
  it.each(['SQLite', 'PostgreSQL'])('keep every existing build on %s when its inputs move into one column, and back', async (kind) => {
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
    const upTo = (last: string) => {
      const list = migrations.filter((m) => m.name <= last);
      const migrationSource: Knex.MigrationSource<Migration> = {
        getMigrations: async () => list,
        getMigrationName: (m) => m.name,
        getMigration: async (m) => m,
      };
      return { migrationSource, tableName: 'knex_migrations' };
    };
    await db.migrate.latest(upTo('20261206_014_replicas'));
    const now = new Date('2026-12-01T10:00:00Z');
    const imageId = await new ImageStore(db).insert(
      {
        owner: 'ada',
        name: 'env',
        system: 'default',
        referenceInput: 'registry.example.org/built/ada/env:2',
        reference: 'registry.example.org/built/ada/env:2',
        registry: 'registry.example.org',
        mountPath: null,
      },
      now,
    );
    const common = { image_id: imageId, owner: 'ada', requested_by: 'ada', status: 'succeeded', log: 'built\n', created_at: now };
    const packages = {
      ...common,
      number: 1,
      mode: 'packages',
      base: 'registry.example.org/base/scipy:1',
      pip: 'xarray==2024.3.0\n',
      conda: '',
      apt: 'graphviz',
      dockerfile: 'FROM registry.example.org/base/scipy:1\nRUN pip install xarray==2024.3.0\n',
      files: Buffer.from(JSON.stringify([{ name: 'a.whl', content: 'AA==' }])),
      file_names: JSON.stringify([{ name: 'a.whl', size: 1 }]),
      git_url: null,
      git_ref: null,
      git_username: null,
      target: 'registry.example.org/built/ada/env:1',
    };
    const fromGit = {
      ...common,
      number: 2,
      mode: 'dockerfile',
      base: null,
      pip: '',
      conda: '',
      apt: '',
      dockerfile: '',
      files: null,
      file_names: '[]',
      git_url: 'https://git.example.org/lab/env.git',
      git_ref: 'v1.2',
      git_username: 'oauth2',
      git_token_ciphertext: Buffer.from([1, 2, 3]),
      git_token_nonce: Buffer.from([4, 5, 6]),
      git_token_key_id: 'key1',
      git_commit: 'a'.repeat(40),
      target: 'registry.example.org/built/ada/env:2',
    };
    await db('builds').insert([packages, fromGit]);
    const inputColumns = ['mode', 'base', 'pip', 'conda', 'apt', 'dockerfile', 'git_url', 'git_ref', 'git_username'];
    const before = (await db('builds')
      .select(['number', ...inputColumns])
      .orderBy('number')) as unknown[];

    expect(await migrateLatest(db)).toEqual(['20261206_015_build_inputs']);
    const store = new BuildStore(db);
    const first = await store.byNumber('ada', imageId, 1);
    const second = await store.byNumber('ada', imageId, 2);
    expect(first?.inputs).toEqual({
      mode: 'packages',
      base: 'registry.example.org/base/scipy:1',
      pip: 'xarray==2024.3.0\n',
      conda: '',
      apt: 'graphviz',
      dockerfile: packages.dockerfile,
      gitUrl: '',
      gitRef: '',
      gitUsername: '',
    });
    expect(first?.fileNames).toEqual([{ name: 'a.whl', size: 1 }]);
    expect(first?.files?.toString()).toBe(packages.files.toString());
    expect(second?.inputs).toEqual({
      mode: 'dockerfile',
      base: '',
      pip: '',
      conda: '',
      apt: '',
      dockerfile: '',
      gitUrl: 'https://git.example.org/lab/env.git',
      gitRef: 'v1.2',
      gitUsername: 'oauth2',
    });
    expect(second?.gitToken?.keyId).toBe('key1');
    expect(second?.gitCommit).toBe('a'.repeat(40));
    // A rebuild of each sends what it sent before: the packages again (their Dockerfile written anew), the repository's own Dockerfile.
    expect(inputsAsRequest(first!.inputs)).toMatchObject({ mode: 'packages', base: packages.base, pip: packages.pip, dockerfile: '' });
    expect(inputsAsRequest(second!.inputs)).toMatchObject({ mode: 'dockerfile', gitUrl: fromGit.git_url, gitRef: 'v1.2', dockerfile: '' });

    await db.migrate.down({ ...upTo('20261206_015_build_inputs') });
    expect(
      await db('builds')
        .select(['number', ...inputColumns])
        .orderBy('number'),
    ).toEqual(before);
    expect(await db.schema.hasColumn('builds', 'inputs')).toBe(false);
  });
});
