/**
 * Quotas on real parts (SQLite, Debian's docker-registry on loopback): a
 * build or a save past a user's quota is refused in words that say what to
 * delete, nothing is stored or queued, and deleting an image frees the room
 * for the next. Registry bytes are read from the registry (the manifests'
 * config and layer sizes, a layer shared by builds counted once).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import { ImageService } from '../../server/images/service.js';
import { ImageStore } from '../../server/images/store.js';
import { RegistryClient } from '../../server/registry/client.js';
import { createKeyring, type Keyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import type { System } from '../../server/systems/schema.js';
import { DEFAULT_STORAGE } from '../../server/systems/storage.js';
import { SystemStore } from '../../server/systems/store.js';
import { buildServices, type BuildServices } from '../support/builds.js';
import { testAccess, testUser } from '../support/identities.js';
import { pushImage } from '../support/images.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';
import { builtSystem, insertBuiltImage, storageServices, type StorageServices } from '../support/storage.js';

let registries: TestRegistries;
let dir: string;
let db: Knex;
let keyring: Keyring;
let storage: StorageServices;
let builds: BuildServices;
let images: ImageService;
let lab: System;
let big: System;
const ada = testUser('ada');
const bob = testUser('bob');

async function count(table: string, where: Record<string, unknown> = {}): Promise<number> {
  const [row] = (await db(table).where(where).count({ n: '*' })) as Array<{ n: number | string }>;
  return Number(row?.n ?? 0);
}

async function refusal(attempt: Promise<unknown>): Promise<AppError> {
  const err = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

const dockerfile = () => ({ mode: 'dockerfile', dockerfile: `FROM ${registries.open}/base/debian:1\nRUN true\n` });

beforeAll(async () => {
  registries = await startRegistries();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-quotas-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  keyring = await createKeyring([new Uint8Array(32).fill(5)]);
  // Lab: 3 images and 4 builds per user. Big: 40 kB of registry space per user.
  lab = builtSystem(registries.open, { storage: { ...DEFAULT_STORAGE, userImages: 3, userBuilds: 4 } });
  big = builtSystem(registries.open, {
    slug: 'big',
    displayName: 'Big',
    build: { ...lab.build, pushTo: `${registries.open}/big` },
    storage: { ...DEFAULT_STORAGE, userRegistryGb: 0.00004 },
  });
  for (const system of [lab, big]) await new SystemStore(db).insert(system, new Date());
  const registry = new RegistryClient({ trustedHosts: registries.trusted });
  storage = storageServices(db, { registry, keyring, now: () => new Date(), images: () => images });
  builds = buildServices(db, {
    keyring,
    trustedRegistries: registries.trusted,
    trustedGitHosts: [],
    systems: [lab, big],
    sites: storage.systems,
    quota: storage.quota,
  });
  images = new ImageService({
    store: new ImageStore(db),
    access: testAccess,
    systems: storage.systems,
    keyring,
    quota: storage.quota,
    onDelete: storage.onDelete,
  });
}, 120_000);

afterAll(async () => {
  await db?.destroy();
  await registries?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('builds kept', () => {
  it('refuses the build past the quota in words, queues nothing, and a deletion frees the room', async () => {
    const { image } = await builds.builds.create(ada, 'ada', { name: 'env1', system: 'lab', ...dockerfile() }, []);
    for (let i = 0; i < 3; i++) await builds.builds.rebuild(ada, 'ada', image.id, undefined, []);
    expect(await count('builds', { owner: 'ada' })).toBe(4);

    const rebuild = await refusal(builds.builds.rebuild(ada, 'ada', image.id, undefined, []));
    expect(rebuild).toMatchObject({ status: 409, code: 'quota_exceeded', field: 'system' });
    expect(rebuild.message).toContain(
      'Your images on Lab keep 4 builds in the site registry (queued and running ones included), the most one user may keep (4)',
    );
    expect(rebuild.message).toContain('Delete an image you no longer need: its builds go with it.');
    expect(rebuild.message).toContain('“env1” (4 builds');
    const another = await refusal(builds.builds.create(ada, 'ada', { name: 'env2', system: 'lab', ...dockerfile() }, []));
    expect(another).toMatchObject({ code: 'quota_exceeded' });
    // Nothing queued, no image saved.
    expect(await count('builds', { owner: 'ada' })).toBe(4);
    expect(await count('images', { owner: 'ada' })).toBe(1);

    await images.remove(ada, 'ada', image.id);
    const next = await builds.builds.create(ada, 'ada', { name: 'env2', system: 'lab', ...dockerfile() }, []);
    expect(next.build).toMatchObject({ number: 1, status: 'queued' });
  });
});

describe('images saved', () => {
  it('refuses the save past the quota in words, stores nothing, and a deletion frees the room', async () => {
    const save = (name: string) => images.create(ada, 'ada', { name, system: 'lab', image: `${registries.open}/other/${name}:1` });
    expect(await count('images', { owner: 'ada' })).toBe(1);
    await save('one');
    const two = await save('two');
    const refused = await refusal(save('three'));
    expect(refused).toMatchObject({ status: 409, code: 'quota_exceeded', field: 'system' });
    expect(refused.message).toBe(
      'You have 3 images on Lab, the most one user may keep there (3). Delete an image you no longer need on My images, then try again.',
    );
    expect(await count('images', { owner: 'ada' })).toBe(3);
    // Another system has room of its own.
    await images.create(ada, 'ada', { name: 'elsewhere', system: 'big', image: `${registries.open}/other/x:1` });
    await images.remove(ada, 'ada', two.id);
    expect((await save('three')).name).toBe('three');
  });
});

describe('registry bytes', () => {
  it('counts what the registry stores for the builds, a shared layer once, and refuses the next build once it is full', async () => {
    const shared = { files: { '/base': randomBytes(20_000).toString('base64') } };
    const pushed = [];
    for (let k = 1; k <= 2; k++) {
      const image = await pushImage(registries.open, 'big/bob/env', String(k), {
        layers: [shared, { files: { '/own': randomBytes(15_000).toString('base64') } }],
      });
      const manifest = JSON.parse(image.manifest.toString('utf8')) as { config: { size: number }; layers: Array<{ size: number }> };
      pushed.push({ number: k, digest: image.digest, finishedAt: new Date(), manifest });
    }
    const imageId = await insertBuiltImage(db, { owner: 'bob', name: 'env', system: big, builds: pushed });
    const [first, second] = pushed.map((p) => p.manifest);
    const expected = first!.config.size + first!.layers[0]!.size + first!.layers[1]!.size + second!.config.size + second!.layers[1]!.size;
    expect(expected).toBeGreaterThan(40_000);

    const refused = await refusal(builds.builds.create(bob, 'bob', { name: 'more', system: 'big', ...dockerfile() }, []));
    expect(refused).toMatchObject({ code: 'quota_exceeded', field: 'system' });
    const size = new Intl.NumberFormat('en', { maximumFractionDigits: 1, minimumFractionDigits: 1 }).format(expected / 1000);
    expect(refused.message).toContain(`Your built images on Big take ${size} kB in the site registry, and one user may use 40.0 kB.`);
    expect(refused.message).toContain('“env” (2 builds');
    expect(await count('builds', { owner: 'bob' })).toBe(2);

    // What My images shows: the same figures against the quota.
    const [quota] = (await storage.service.quotasOf(bob, 'bob')).filter((q) => q.system.slug === 'big');
    expect(quota?.registryBytes).toEqual({ used: expected, limit: 40_000 });
    expect(quota?.largest).toEqual([{ imageId, name: 'env', builds: 2, bytes: expected }]);

    // Another image of bob's points at build 2: deleting the built image frees only what nothing keeps.
    const pin = await images.create(bob, 'bob', {
      name: 'pin',
      system: 'big',
      image: `${registries.open}/big/bob/env:2@${pushed[1]!.digest}`,
    });
    await images.remove(bob, 'bob', imageId);
    const kept = second!.config.size + second!.layers[0]!.size + second!.layers[1]!.size;
    const [after] = (await storage.service.quotasOf(bob, 'bob')).filter((q) => q.system.slug === 'big');
    expect(after?.registryBytes.used).toBe(kept);
    await images.remove(bob, 'bob', pin.id);
    const [freed] = (await storage.service.quotasOf(bob, 'bob')).filter((q) => q.system.slug === 'big');
    expect(freed?.registryBytes.used).toBe(0);
    expect((await builds.builds.create(bob, 'bob', { name: 'more', system: 'big', ...dockerfile() }, [])).build.status).toBe('queued');
  });
});
