/**
 * The queries behind ownership, on SQLite and PostgreSQL alike: who pushed
 * builds to a repository (repository names with "_" and "%", which LIKE
 * would take for wildcards, and another registry's look-alike), and the
 * migration that gives existing publications the digest they were served at.
 */
import { BuildInputsSchema } from '../../server/builds/inputs.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as publicationDigest from '../../migrations/20261206_013_publication_digest.js';
import { BuildStore } from '../../server/builds/store.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { createTestDatabase } from '../support/postgres.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const now = new Date('2026-12-06T10:00:00Z');

async function image(db: Knex, owner: string, reference: string, published: boolean): Promise<number> {
  const [row] = (await db('images')
    .insert({
      owner,
      name: reference.split('/').pop(),
      system: 'dock',
      reference_input: reference,
      reference,
      registry: reference.split('/')[0],
      created_at: now,
      updated_at: now,
      ...(published ? { published_at: now, published_by: 'admin', published_description: '' } : {}),
    })
    .returning('id')) as Array<{ id: number } | number>;
  return typeof row === 'object' ? Number(row.id) : Number(row);
}

async function check(db: Knex, imageId: number, owner: string, fields: Record<string, unknown>): Promise<void> {
  await db('checks').insert({
    image_id: imageId,
    owner,
    system: 'dock',
    platform: 'linux/amd64',
    policy_hash: 'p',
    kind: 'static',
    findings: '[]',
    log: '',
    created_at: now,
    ...fields,
  });
}

async function build(db: Knex, imageId: number, owner: string, number: number, target: string): Promise<void> {
  await BuildStore.insert(db, {
    imageId,
    owner,
    number,
    requestedBy: owner,
    inputs: BuildInputsSchema.parse({ mode: 'dockerfile', dockerfile: 'FROM scratch\n' }),
    files: [],
    gitToken: null,
    target,
    createdAt: now,
  });
}

async function exercise(db: Knex): Promise<void> {
  await migrateLatest(db);

  // Who pushed where.
  const ada = await image(db, 'ada', 'reg.example.org/built/ada/env:1', false);
  const eve = await image(db, 'eve', 'reg.example.org/built/a_b/env:1', false);
  await build(db, ada, 'ada', 1, 'reg.example.org/built/ada/env:1');
  await build(db, ada, 'ada', 2, 'reg.example.org/built/ada/env:2');
  await build(db, eve, 'eve', 1, 'reg.example.org/built/a_b/env:1');
  await build(db, eve, 'eve', 2, 'reg.example.org/built/ada/envx:1');
  const store = new BuildStore(db);
  expect(await store.pushersOf('reg.example.org/built/ada/env')).toEqual(['ada']);
  expect(await store.pushersOf('reg.example.org/built/a_b/env')).toEqual(['eve']);
  // "_" and "%" are themselves here, not wildcards; a longer name is another repository.
  expect(await store.pushersOf('reg.example.org/built/aXb/env')).toEqual([]);
  expect(await store.pushersOf('reg.example.org/built/a%/env')).toEqual([]);
  expect(await store.pushersOf('reg.example.org/built/ada/en')).toEqual([]);
  expect(await store.pushersOf('REG.example.org/built/ada/env')).toEqual([]);

  // Publications from before: the digest of the check they were served at, where there is one.
  const served = await image(db, 'dan', 'reg.example.org/lab/served:1', true);
  await check(db, served, 'dan', { reference: 'reg.example.org/lab/served:1', status: 'failed', digest: D2 });
  await check(db, served, 'dan', { reference: 'reg.example.org/lab/served:1', status: 'passed', digest: D2, manifest_digest: D1 });
  const indexOnly = await image(db, 'dan', 'reg.example.org/lab/plain:1', true);
  await check(db, indexOnly, 'dan', { reference: 'reg.example.org/lab/plain:1', status: 'passed', digest: D2 });
  const edited = await image(db, 'dan', 'reg.example.org/lab/edited:2', true);
  await check(db, edited, 'dan', { reference: 'reg.example.org/lab/edited:1', status: 'passed', digest: D1 });
  const failing = await image(db, 'dan', 'reg.example.org/lab/failing:1', true);
  await check(db, failing, 'dan', { reference: 'reg.example.org/lab/failing:1', status: 'passed', digest: D1 });
  await check(db, failing, 'dan', { reference: 'reg.example.org/lab/failing:1', status: 'failed', digest: D1 });
  const unpublished = await image(db, 'dan', 'reg.example.org/lab/private:1', false);
  await check(db, unpublished, 'dan', { reference: 'reg.example.org/lab/private:1', status: 'passed', digest: D1 });

  await publicationDigest.down(db);
  await publicationDigest.up(db);
  const digests = Object.fromEntries(
    (
      (await db('images').whereIn('id', [served, indexOnly, edited, failing, unpublished]).select('id', 'published_digest')) as Array<{
        id: number;
        published_digest: string | null;
      }>
    ).map((r) => [Number(r.id), r.published_digest]),
  );
  expect(digests).toEqual({ [served]: D1, [indexOnly]: D2, [edited]: null, [failing]: null, [unpublished]: null });
}

describe('ownership stores', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('work on SQLite', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-ownership-stores-'));
    const db = openDatabase(`sqlite://${dir}/db.sqlite`);
    cleanups.push(async () => {
      await db.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    await exercise(db);
  });

  it('work on PostgreSQL', async () => {
    const pg = await createTestDatabase();
    const db = openDatabase(pg.url);
    cleanups.push(async () => {
      await db.destroy();
      await pg.drop();
    });
    await exercise(db);
  });
});
