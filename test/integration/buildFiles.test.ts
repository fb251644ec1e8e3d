/**
 * Uploaded build files, stored once per content (build_files) and named by
 * each build (build_inputs), on SQLite and PostgreSQL: a rebuild names the
 * same contents without a copy, another image uploading the same bytes
 * shares them, and a content goes when the last image whose builds named it
 * is deleted, never while another build names it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { WorkDir } from '../../server/workDir.js';
import { BuildInputsSchema } from '../../server/builds/inputs.js';
import { BuildStore } from '../../server/builds/store.js';
import { buildServices } from '../support/builds.js';
import { testUser } from '../support/identities.js';
import { createTestDatabase } from '../support/postgres.js';
import { testSystem } from '../support/systems.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

async function database(kind: string): Promise<Knex> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-build-files-'));
  const work = WorkDir.open(path.join(dir, 'work'));
  let db: Knex;
  if (kind === 'SQLite') {
    db = openDatabase(`sqlite://${dir}/db.sqlite`);
  } else {
    const pg = await createTestDatabase();
    db = openDatabase(pg.url);
    cleanups.push(() => pg.drop());
  }
  cleanups.unshift(async () => {
    await db.destroy();
    work.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await migrateLatest(db);
  return db;
}

const count = async (db: Knex, table: string) => Number(((await db(table).count({ n: '*' }).first()) as { n: unknown }).n);

describe.each(['SQLite', 'PostgreSQL'])('uploaded build files on %s', (kind) => {
  it('are stored once per content, named again by rebuilds, and removed with the last image that named them', async () => {
    const db = await database(kind);
    const system = testSystem({
      allowedRegistries: ['registry.example.org/*'],
      build: { enabled: true, pushTo: 'registry.example.org/built', network: 'none', baseImages: [] },
    });
    const { builds, store, checkServices } = buildServices(db, {
      keyring: await createKeyring([new Uint8Array(32).fill(4)]),
      trustedRegistries: [],
      trustedGitHosts: [],
      systems: [system],
    });
    const ada = testUser('ada');
    const wheel = { name: 'ci_greeting-1.0-py3-none-any.whl', content: Buffer.from('a wheel, byte for byte') };
    const notes = { name: 'notes.txt', content: Buffer.from('notes\n') };
    const dockerfile = (copy: string) => `FROM registry.example.org/base:1\nCOPY ${copy} /opt/\n`;
    const request = (name: string, copy: string) => ({ name, system: 'default', mode: 'dockerfile', dockerfile: dockerfile(copy) });

    const first = await builds.create(ada, 'ada', request('env', '*.whl notes.txt'), [wheel, notes]);
    expect(await count(db, 'build_files')).toBe(2);

    // A rebuild with the same inputs names the same two contents; nothing is copied.
    const again = await builds.rebuild(ada, 'ada', first.image.id, undefined, []);
    expect(await count(db, 'build_files')).toBe(2);
    expect(await count(db, 'build_inputs')).toBe(4);
    expect(await store.contents(again.id)).toEqual([wheel, notes]);
    expect((await builds.get(ada, 'ada', first.image.id, 2)).inputs.files).toEqual([
      { name: wheel.name, size: wheel.content.length },
      { name: notes.name, size: notes.content.length },
    ]);

    // Another image uploading the same bytes under another name shares the content.
    const other = await builds.create(ada, 'ada', request('other', 'renamed.whl'), [{ name: 'renamed.whl', content: wheel.content }]);
    expect(await count(db, 'build_files')).toBe(2);
    expect(await store.contents(other.build.id)).toEqual([{ name: 'renamed.whl', content: wheel.content }]);

    // An edited rebuild with a new upload stores that one.
    const edited = { ...request('env', 'changes.txt'), system: 'default' };
    await builds.rebuild(ada, 'ada', first.image.id, edited, [{ name: 'changes.txt', content: Buffer.from('a change\n') }]);
    expect(await count(db, 'build_files')).toBe(3);

    // Deleting the first image removes what only its builds named; the shared wheel stays for the other.
    await checkServices.images.remove(ada, 'ada', first.image.id);
    expect(await count(db, 'build_files')).toBe(1);
    expect(await store.contents(other.build.id)).toEqual([{ name: 'renamed.whl', content: wheel.content }]);
    await checkServices.images.remove(ada, 'ada', other.image.id);
    expect(await count(db, 'build_files')).toBe(0);
    expect(await count(db, 'build_inputs')).toBe(0);
  });

  it('keep a content that a build saved at the same moment names, while the image that named it is deleted', async () => {
    const db = await database(kind);
    const system = testSystem({
      allowedRegistries: ['registry.example.org/*'],
      build: { enabled: true, pushTo: 'registry.example.org/built', network: 'none', baseImages: [] },
    });
    const { builds, store, checkServices } = buildServices(db, {
      keyring: await createKeyring([new Uint8Array(32).fill(4)]),
      trustedRegistries: [],
      trustedGitHosts: [],
      systems: [system],
    });
    const ada = testUser('ada');
    const data = { name: 'data.csv', content: Buffer.from('a,b\n1,2\n') };
    const dockerfile = 'FROM registry.example.org/base:1\nCOPY . /opt/\n';
    const leaving = await builds.create(ada, 'ada', { name: 'leaving', system: 'default', mode: 'dockerfile', dockerfile }, [data]);
    const staying = await builds.create(ada, 'ada', { name: 'staying', system: 'default', mode: 'dockerfile', dockerfile }, []);
    const [file] = await store.files(leaving.build.id);

    // A build of the other image names the same content, in a transaction not yet committed.
    const saving = await db.transaction();
    const saved = await BuildStore.insert(saving, {
      imageId: staying.image.id,
      owner: 'ada',
      number: 2,
      requestedBy: 'ada',
      inputs: BuildInputsSchema.parse({ mode: 'dockerfile', dockerfile }),
      files: [file!],
      gitToken: null,
      target: 'registry.example.org/built/ada/staying:2',
      createdAt: new Date(),
    });
    const removing = checkServices.images.remove(ada, 'ada', leaving.image.id);
    if (kind === 'PostgreSQL') {
      // The deletion waits for the saving transaction's lock on the content, as it must. (Asked on a
      // connection of its own: a transaction sees the activity of its first look, for its whole life.)
      const waiting = async () =>
        Number(
          (
            (await db.raw(
              `select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`,
            )) as {
              rows: Array<{ n: string }>;
            }
          ).rows[0]?.n,
        );
      for (let i = 0; i < 200 && (await waiting()) === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await waiting()).toBe(1);
    }
    await saving.commit();
    await removing;
    expect(await db('images').where({ id: leaving.image.id }).first()).toBeUndefined();
    expect(await store.contents(saved)).toEqual([data]);
  });
});
