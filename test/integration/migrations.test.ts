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

/** Ada's image `env` of reference r.example/a:1, saved at `now` (for rows that refer to an image). */
function adaImage(db: Knex, now: Date): Promise<number> {
  const reference = 'r.example/a:1';
  return new ImageStore(db).insert(
    { owner: 'ada', name: 'env', system: 'default', referenceInput: reference, reference, registry: 'r.example', mountPath: null },
    now,
  );
}

/** knex's migrator over a list of our migrations (server/store/migrate.ts runs them all). */
function over(list: Migration[]): Knex.MigratorConfig {
  return {
    tableName: 'knex_migrations',
    migrationSource: {
      getMigrations: async () => list,
      getMigrationName: (m: Migration) => m.name,
      getMigration: async (m: Migration) => m,
    } satisfies Knex.MigrationSource<Migration>,
  };
}

async function upAndDown(db: Knex): Promise<void> {
  expect(await migrateLatest(db)).toEqual(names);
  expect(await tables(db)).toEqual([
    'audit',
    'build_files',
    'build_inputs',
    'builds',
    'built_manifests',
    'checks',
    'cleanup_runs',
    'credentials',
    'data_removal_requests',
    'data_volumes',
    'deployment',
    'engine_images',
    'forecasts',
    'image_shares',
    'images',
    'inventories',
    'layer_indexes',
    'link_launches',
    'registry_credentials',
    'replicas',
    'revisions',
    'sessions',
    'systems',
    'volume_launches',
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

  /** A new, empty database of `kind` ('SQLite' or 'PostgreSQL'), removed after the tests. */
  async function emptyDatabase(kind: string): Promise<Knex> {
    if (kind === 'SQLite') {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-mig-'));
      const db = openDatabase(`sqlite://${dir}/db.sqlite`);
      cleanups.push(async () => {
        await db.destroy();
        fs.rmSync(dir, { recursive: true, force: true });
      });
      return db;
    }
    const pg = await createTestDatabase();
    const db = openDatabase(pg.url);
    cleanups.push(async () => {
      await db.destroy();
      await pg.drop();
    });
    return db;
  }

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
    const db = await emptyDatabase(kind);
    await migrationStatus(db); // creates knex's tables and its one lock row
    await db('knex_migrations_lock').insert({ is_locked: 0 });

    expect(await migrateLatest(db, 10_000)).toEqual(names);
    expect(await db('knex_migrations_lock').select('is_locked')).toEqual([{ is_locked: 0 }]);
    expect(await migrationStatus(db)).toEqual({ applied: names, pending: [] });
  });

  // Builds kept a JSON copy of their files each (migration 010): 011 moves them to one row per content.
  it.each(['SQLite', 'PostgreSQL'])("move old builds' files to one stored copy per content on %s, and back down", async (kind) => {
    const db = await emptyDatabase(kind);
    await db.migrate.latest(over(migrations.slice(0, names.indexOf('20261202_010_builds') + 1)));
    const now = new Date();
    const [image] = (await db('images')
      .insert({
        owner: 'ada',
        name: 'env',
        system: 'default',
        reference_input: 'r.example/built/ada/env:2',
        reference: 'r.example/built/ada/env:2',
        registry: 'r.example',
        created_at: now,
        updated_at: now,
      })
      .returning('id')) as Array<{ id: number } | number>;
    const imageId = typeof image === 'object' ? Number(image.id) : Number(image);
    const wheel = Buffer.from([0x50, 0x4b, 3, 4, 0, 255, 1, 2]);
    const packed = (files: Array<[string, Buffer]>) =>
      Buffer.from(JSON.stringify(files.map(([name, content]) => ({ name, content: content.toString('base64') }))));
    const build = async (number: number, files: Buffer | null) => {
      const [row] = (await db('builds')
        .insert({
          image_id: imageId,
          owner: 'ada',
          number,
          status: 'succeeded',
          requested_by: 'ada',
          mode: 'packages',
          pip: '',
          conda: '',
          apt: '',
          dockerfile: 'FROM x\n',
          files,
          file_names: JSON.stringify([]),
          target: `r.example/built/ada/env:${number}`,
          log: '',
          created_at: now,
        })
        .returning('id')) as Array<{ id: number } | number>;
      return typeof row === 'object' ? Number(row.id) : Number(row);
    };
    // Build 2 is a rebuild: another copy of the same two files, in another order.
    const first = await build(
      1,
      packed([
        ['ci_greeting-1.0-py3-none-any.whl', wheel],
        ['notes.txt', Buffer.from('notes\n')],
      ]),
    );
    const second = await build(
      2,
      packed([
        ['notes.txt', Buffer.from('notes\n')],
        ['ci_greeting-1.0-py3-none-any.whl', wheel],
      ]),
    );
    const none = await build(3, null);

    await migrateLatest(db);
    expect(Number(((await db('build_files').count({ n: '*' }).first()) as { n: unknown }).n)).toBe(2);
    expect(await db.schema.hasColumn('builds', 'files')).toBe(false);
    const store = new BuildStore(db);
    expect(await store.contents(first)).toEqual([
      { name: 'ci_greeting-1.0-py3-none-any.whl', content: wheel },
      { name: 'notes.txt', content: Buffer.from('notes\n') },
    ]);
    expect((await store.contents(second)).map((f) => f.name)).toEqual(['notes.txt', 'ci_greeting-1.0-py3-none-any.whl']);
    expect(await store.contents(none)).toEqual([]);

    // That migration's own way back (later ones stay: they do not touch the files).
    await db.migrate.down({ ...over(migrations), name: '20261206_011_build_files' });
    const restored = (await db('builds').orderBy('number').select('files')) as Array<{ files: Buffer | null }>;
    const unpack = (files: Buffer | null) => (files ? (JSON.parse(Buffer.from(files).toString()) as unknown) : null);
    expect(restored.map((r) => unpack(r.files))).toEqual([
      unpack(
        packed([
          ['ci_greeting-1.0-py3-none-any.whl', wheel],
          ['notes.txt', Buffer.from('notes\n')],
        ]),
      ),
      unpack(
        packed([
          ['notes.txt', Buffer.from('notes\n')],
          ['ci_greeting-1.0-py3-none-any.whl', wheel],
        ]),
      ),
      null,
    ]);
    expect(await tables(db)).not.toContain('build_files');
  });

  // 015 moves the input columns of every existing build into one JSON column: old builds stay shown and rebuildable.
  it.each(['SQLite', 'PostgreSQL'])('keep every existing build on %s when its inputs move into one column, and back', async (kind) => {
    const db = await emptyDatabase(kind);
    const upTo = (last: string) => over(migrations.filter((m) => m.name <= last));
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
    // Build 1's uploaded file, stored as 011 stores files: rows that refer to the builds.
    const first1 = (await db('builds').where({ number: 1 }).first('id')) as { id: number };
    await db('build_files').insert({ sha256: 'a'.repeat(64), size: 1, content: Buffer.from([0]), created_at: now });
    await db('build_inputs').insert({ build_id: first1.id, position: 0, name: 'a.whl', sha256: 'a'.repeat(64) });
    const inputColumns = ['mode', 'base', 'pip', 'conda', 'apt', 'dockerfile', 'git_url', 'git_ref', 'git_username'];
    const before = (await db('builds')
      .select(['number', ...inputColumns])
      .orderBy('number')) as unknown[];

    expect((await migrateLatest(db))[0]).toBe('20261206_015_build_inputs');
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
      gitDirectory: '',
    });
    expect(first?.fileNames).toEqual([{ name: 'a.whl', size: 1 }]);
    // SQLite drops a column by copying the table: the rows that refer to a build must outlive it.
    expect(await store.contents(first!.id)).toEqual([{ name: 'a.whl', content: Buffer.from([0]) }]);
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
      gitDirectory: '',
    });
    expect(second?.gitToken?.keyId).toBe('key1');
    expect(second?.gitCommit).toBe('a'.repeat(40));
    // A rebuild of each sends what it sent before: the packages again (their Dockerfile written anew), the repository's own Dockerfile.
    expect(inputsAsRequest(first!.inputs)).toMatchObject({ mode: 'packages', base: packages.base, pip: packages.pip, dockerfile: '' });
    expect(inputsAsRequest(second!.inputs)).toMatchObject({ mode: 'dockerfile', gitUrl: fromGit.git_url, gitRef: 'v1.2', dockerfile: '' });

    await db.migrate.down({ ...upTo('20261206_099'), name: '20261206_015_build_inputs' });
    expect(
      await db('builds')
        .select(['number', ...inputColumns])
        .orderBy('number'),
    ).toEqual(before);
    expect(await db.schema.hasColumn('builds', 'inputs')).toBe(false);
    expect(await store.contents(first!.id)).toEqual([{ name: 'a.whl', content: Buffer.from([0]) }]);
  });

  it.each(['SQLite', 'PostgreSQL'])("roll back images' columns on %s without losing the image's builds", async (kind) => {
    const db = await emptyDatabase(kind);
    const all = over(migrations);
    await migrateLatest(db);
    const now = new Date('2026-12-01T10:00:00Z');
    const imageId = await adaImage(db, now);
    await db('builds').insert({
      image_id: imageId,
      owner: 'ada',
      number: 1,
      status: 'succeeded',
      requested_by: 'ada',
      inputs: JSON.stringify({ mode: 'dockerfile', dockerfile: 'FROM r.example/a:1\n' }),
      file_names: '[]',
      target: 'r.example/built/ada/env:1',
      log: '',
      created_at: now,
    });
    const count = async () => Number(((await db('builds').where({ image_id: imageId }).count({ n: '*' }).first()) as { n: unknown }).n);
    expect(await count()).toBe(1);
    // Both drop columns of images; SQLite does that by copying the table, which the builds refer to.
    await db.migrate.down({ ...all, name: '20261206_013_publication_digest' });
    expect(await count()).toBe(1);
    await db.migrate.down({ ...all, name: '20261202_009_sharing' });
    expect(await count()).toBe(1);
    expect(await db.schema.hasColumn('images', 'published_at')).toBe(false);
  });

  it.each(['SQLite', 'PostgreSQL'])(
    "give every existing build its target's repository on %s, which finds who pushed there",
    async (kind) => {
      const db = await emptyDatabase(kind);
      await db.migrate.latest(over(migrations.filter((m) => m.name < '20261206_020_build_repository')));
      const now = new Date('2026-12-01T10:00:00Z');
      const imageId = await adaImage(db, now);
      const common = { image_id: imageId, status: 'succeeded', inputs: '{}', file_names: '[]', log: '', created_at: now };
      await db('builds').insert([
        { ...common, owner: 'ada', requested_by: 'ada', number: 1, target: '127.0.0.1:5000/built/ada/env:1' },
        { ...common, owner: 'bob', requested_by: 'bob', number: 2, target: '127.0.0.1:5000/built/ada/env.old:2' },
      ]);
      expect((await migrateLatest(db))[0]).toBe('20261206_020_build_repository');
      const store = new BuildStore(db);
      expect(await store.pushersOf('127.0.0.1:5000/built/ada/env')).toEqual(['ada']);
      expect(await store.pushersOf('127.0.0.1:5000/built/ada/env.old')).toEqual(['bob']);
      expect(await store.pushersOf('127.0.0.1:5000/built/ada')).toEqual([]);
    },
  );
});
