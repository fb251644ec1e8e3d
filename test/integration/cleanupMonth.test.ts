/**
 * A simulated month of building on a real registry (Debian's docker-registry
 * on loopback, deletes enabled) and SQLite, with the clean-up's clock set to
 * the month's end: 20 users, 40 images, 200 builds pushed as builds push them
 * (a base layer they all share, a layer and config of their own), some images
 * deleted, shared, published, rolled back, kept as revisions (the newest
 * KEPT_REVISIONS of each image's revisions table rows), some builds
 * started. The test's own model says which manifests the rules keep; after
 * the clean-up the registry holds exactly those, a second run removes
 * nothing, the registry's garbage collection frees bytes on disk, every
 * remaining image still launches, and its manifest and layers still download.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../server/audit/store.js';
import type { HubIdentity } from '../../server/hub/identity.js';
import { ImageService } from '../../server/images/service.js';
import { ImageStore } from '../../server/images/store.js';
import { LaunchService } from '../../server/launch/service.js';
import { LaunchStore } from '../../server/launch/store.js';
import { RegistryClient } from '../../server/registry/client.js';
import { createKeyring, type Keyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import type { System } from '../../server/systems/schema.js';
import { SystemStore } from '../../server/systems/store.js';
import { testAccess } from '../support/identities.js';
import { layerTar, pushImage } from '../support/images.js';
import { bytesOnDisk, garbageCollect, startRegistries, type TestRegistries } from '../support/registry.js';
import { builtSystem, insertBuiltImage, storageServices, type StorageServices } from '../support/storage.js';

const DAY = 86_400_000;
/** The end of the simulated month: the clean-up's "now". */
const END = new Date(Math.floor(Date.now() / DAY) * DAY + 12 * 3600_000);
const daysBefore = (n: number) => new Date(END.getTime() - n * DAY);
const RETENTION_DAYS = 7;
/** Revisions each image keeps on the system (revisions/: the newest so many, and the one it runs). */
const KEPT_REVISIONS = 4;

const admin: HubIdentity = { kind: 'user', name: 'root', admin: true, groups: [], scopes: ['access:services'] };
const launcher: HubIdentity = { kind: 'service', name: 'hook', admin: false, groups: [], scopes: ['custom:custom-images:launch'] };

interface ModelBuild {
  number: number;
  digest: string;
  pushedAt: Date;
  /** Bytes of what this build alone has (its layer and config). */
  ownBytes: number;
}

interface ModelImage {
  id: number;
  owner: string;
  name: string;
  repository: string;
  builds: ModelBuild[];
  current: string;
  deletedAt?: Date;
  shared?: boolean;
  published?: string;
  /** The digests of its revisions, oldest first (revision 1 first), as its checks recorded them. */
  revisions: string[];
  /** Starts of a digest, when. */
  launches: Array<{ digest: string; at: Date }>;
}

let registries: TestRegistries;
let dir: string;
let db: Knex;
let keyring: Keyring;
let system: System;
let storage: StorageServices;
let registry: RegistryClient;
const images: ModelImage[] = [];

/** Whether the registry serves `repository@digest`. */
async function inRegistry(repository: string, digest: string): Promise<boolean> {
  const res = await fetch(`http://${registries.open}/v2/${repository}/manifests/${digest}`, {
    method: 'HEAD',
    headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  return res.ok;
}

/** What the test's own model keeps: the rules as the issue states them, written out again. */
function expectedKept(image: ModelImage, build: ModelBuild): boolean {
  const windowStart = END.getTime() - RETENTION_DAYS * DAY;
  if (!image.deletedAt && build.digest === image.current) return true;
  if (!image.deletedAt && image.revisions.slice(-KEPT_REVISIONS).includes(build.digest)) return true;
  if (!image.deletedAt && build.digest === image.published) return true;
  if (image.launches.some((l) => l.digest === build.digest && l.at.getTime() > windowStart)) return true;
  const next = image.builds.find((b) => b.number === build.number + 1);
  const goneAt = [next?.pushedAt, image.deletedAt].filter((d): d is Date => d !== undefined).sort((a, b) => a.getTime() - b.getTime())[0];
  // The newest build no longer current (a rollback) waits from the first run that sees it.
  if (!goneAt) return true;
  return goneAt.getTime() > windowStart;
}

beforeAll(async () => {
  registries = await startRegistries();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-month-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  keyring = await createKeyring([new Uint8Array(32).fill(7)]);
  system = builtSystem(registries.open, {
    keptRevisions: KEPT_REVISIONS,
    storage: {
      userImages: null,
      userBuilds: null,
      userRegistryGb: null,
      systemImages: null,
      systemBuilds: null,
      systemRegistryGb: null,
      buildRetentionDays: RETENTION_DAYS,
      volumeGraceDays: null,
    },
  });
  await new SystemStore(db).insert(system, daysBefore(40));
  registry = new RegistryClient({ trustedHosts: registries.trusted });
  storage = storageServices(db, { registry, keyring, now: () => END });

  // Every build shares one base layer, as builds from one base image do.
  const base = { files: { '/base/data': randomBytes(200_000).toString('base64') } };
  const audit = new AuditLog(db);
  for (let u = 0; u < 20; u++) {
    const owner = `user${String(u).padStart(2, '0')}`;
    for (let i = 0; i < 2; i++) {
      const n = u * 2 + i;
      const name = `env${i}`;
      const repository = `built/${owner}/${name}`;
      const builds: ModelBuild[] = [];
      for (let k = 1; k <= 5; k++) {
        const own = randomBytes(30_000).toString('base64');
        const pushed = await pushImage(registries.open, repository, String(k), {
          layers: [base, { files: { '/own/data': own } }],
          env: [`BUILD=${owner}/${name}/${k}`],
        });
        const raw = await layerTar({ '/own/data': own });
        // Pushed on days 28, 20, 12, 5 and 1 before the end, a few hours apart per image.
        const pushedAt = new Date(daysBefore([28, 20, 12, 5, 1][k - 1] ?? 0).getTime() + (n % 5) * 3600_000);
        builds.push({ number: k, digest: pushed.digest, pushedAt, ownBytes: raw.length });
      }
      const image: ModelImage = {
        id: 0,
        owner,
        name,
        repository: `${registries.open}/${repository}`,
        builds,
        current: builds[4]!.digest,
        launches: [],
        // Checked since revisions were recorded: builds 3 to 5 (some images: all five, of which the newest 4 are kept).
        revisions: (n % 7 === 3 ? builds : builds.slice(2)).map((b) => b.digest),
      };
      // Rolled back to build 4: build 5, the newest, is no longer what the image runs.
      if (n % 9 === 4) image.current = builds[3]!.digest;
      if (n % 6 === 1) image.shared = true;
      // Published at build 2: withdrawn since the image moved on, still named by the publication.
      if (n % 8 === 2) image.published = builds[1]!.digest;
      // Started: build 3 two days ago (kept), build 2 twenty days ago (not kept for that).
      if (n % 4 === 0)
        image.launches.push({ digest: builds[2]!.digest, at: daysBefore(2) }, { digest: builds[1]!.digest, at: daysBefore(20) });
      // Deleted 10 days ago (all its builds go) or 3 days ago (all stay for now).
      if (n % 10 === 5) image.deletedAt = daysBefore(10);
      if (n % 10 === 7) image.deletedAt = daysBefore(3);
      image.id = await insertBuiltImage(db, {
        owner,
        name,
        system,
        builds: builds.map((b) => ({ number: b.number, digest: b.digest, finishedAt: b.pushedAt })),
        current: image.current,
      });
      if (image.shared)
        await db('image_shares').insert({ image_id: image.id, group_name: 'lab', shared_by: owner, created_at: daysBefore(25) });
      if (image.published) {
        await new ImageStore(db).setPublished(image.id, { at: daysBefore(19), by: 'root', description: 'course', digest: image.published });
      }
      // As each build's check recorded it (revisions/service.ts): numbered per image, of the build's push.
      for (const [i, digest] of image.revisions.entries()) {
        const build = builds.find((b) => b.digest === digest)!;
        await db('revisions').insert({
          image_id: image.id,
          owner,
          number: i + 1,
          reference: `${image.repository}:${build.number}@${digest}`,
          digest,
          manifest_digest: null,
          platform: system.platform,
          status: 'passed',
          reason: i === 0 ? 'first' : 'rebuilt',
          build_number: build.number,
          created_at: build.pushedAt,
          updated_at: build.pushedAt,
        });
      }
      for (const launch of image.launches) {
        await audit.append(
          {
            actor: 'hook',
            actorKind: 'service',
            action: 'image.launch',
            targetType: 'image',
            targetId: String(image.id),
            details: {
              owner,
              user: owner,
              image: `${image.repository}@${launch.digest}`,
              digest: launch.digest,
              system: system.slug,
              pull: 'kubernetes',
            },
          },
          launch.at,
        );
      }
      images.push(image);
    }
  }
  // Deleting an image starts its builds' grace: as the image service deletes it, at that time.
  for (const image of images.filter((i) => i.deletedAt)) {
    const deletion = new ImageService({
      store: new ImageStore(db),
      access: testAccess,
      systems: storage.systems,
      keyring,
      onDelete: storage.onDelete,
      now: () => image.deletedAt as Date,
    });
    await deletion.remove(
      { kind: 'user', name: image.owner, admin: false, groups: [], scopes: ['access:services'] },
      image.owner,
      image.id,
    );
  }
}, 600_000);

afterAll(async () => {
  await db?.destroy();
  await registries?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('a month of builds, cleaned up', () => {
  it('the dry run lists exactly what the model deletes, and removes nothing', async () => {
    const dry = await storage.service.dryRun(admin);
    const wouldGo = new Set(dry.manifests.filter((m) => !m.verdict.keep).map((m) => `${m.manifest.repository}@${m.manifest.digest}`));
    const modelGoes = new Set(images.flatMap((i) => i.builds.filter((b) => !expectedKept(i, b)).map((b) => `${i.repository}@${b.digest}`)));
    expect(wouldGo).toEqual(modelGoes);
    expect(modelGoes.size).toBeGreaterThan(50);
    expect(modelGoes.size).toBeLessThan(200 - 40);
    for (const image of images)
      for (const b of image.builds) expect(await inRegistry(image.repository.replace(`${registries.open}/`, ''), b.digest)).toBe(true);
  });

  it('leaves the registry holding exactly the manifests the rules keep, each removal audited once', async () => {
    const before = bytesOnDisk(registries.storage);
    const [run] = await storage.service.requestRun(admin);
    const ended = await storage.worker.runNow(run!.id);
    expect(ended).toMatchObject({ status: 'succeeded' });

    let kept = 0;
    for (const image of images) {
      for (const build of image.builds) {
        const expected = expectedKept(image, build);
        if (expected) kept++;
        expect({
          image: image.name,
          owner: image.owner,
          build: build.number,
          there: await inRegistry(image.repository.slice(registries.open.length + 1), build.digest),
        }).toEqual({
          image: image.name,
          owner: image.owner,
          build: build.number,
          there: expected,
        });
      }
    }
    // Nothing started within the window went.
    const windowStart = END.getTime() - RETENTION_DAYS * DAY;
    for (const image of images) {
      for (const launch of image.launches.filter((l) => l.at.getTime() > windowStart)) {
        expect(await inRegistry(image.repository.slice(registries.open.length + 1), launch.digest)).toBe(true);
      }
    }
    const entries = (await db('audit').where({ action: 'storage.manifest.delete' }).select('details')) as Array<{ details: string }>;
    const deleted = entries.map((e) => (JSON.parse(e.details) as { manifest: string }).manifest);
    expect(deleted.length).toBe(200 - kept);
    expect(new Set(deleted).size).toBe(deleted.length);
    expect(ended?.summary?.deletedManifests).toBe(200 - kept);

    // A second run finds nothing more to delete.
    const [again] = await storage.service.requestRun(admin);
    expect(await storage.worker.runNow(again!.id)).toMatchObject({ status: 'succeeded', summary: { deletedManifests: 0 } });
    expect(await db('audit').where({ action: 'storage.manifest.delete' }).count({ n: '*' })).toEqual([{ n: 200 - kept }]);

    // The registry's garbage collection frees the layers and configs no kept manifest references.
    garbageCollect(registries.openConfig);
    const after = bytesOnDisk(registries.storage);
    const freedAtLeast = images.flatMap((i) => i.builds.filter((b) => !expectedKept(i, b))).reduce((sum, b) => sum + b.ownBytes / 2, 0);
    expect(before - after).toBeGreaterThan(freedAtLeast);
  });

  it('every image that is left still launches, and its manifest and layers still download', async () => {
    const imageService = new ImageService({ store: new ImageStore(db), access: testAccess, systems: storage.systems, keyring });
    const launches = new LaunchService({
      audit: new AuditLog(db),
      access: testAccess,
      store: new LaunchStore(db),
      images: imageService,
      systems: storage.systems,
      registry,
      engine: undefined,
      now: () => END,
    });
    const left = images.filter((i) => !i.deletedAt);
    expect(left.length).toBe(32);
    for (const image of left) {
      const params = await launches.launch(launcher, image.owner, image.id);
      expect(params.digest).toBe(image.current);
      const repository = image.repository.slice(registries.open.length + 1);
      const manifest = await fetch(`http://${registries.open}/v2/${repository}/manifests/${params.digest}`, {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(manifest.status).toBe(200);
      const body = (await manifest.json()) as { config: { digest: string }; layers: Array<{ digest: string }> };
      for (const blob of [body.config, ...body.layers]) {
        const res = await fetch(`http://${registries.open}/v2/${repository}/blobs/${blob.digest}`);
        expect(res.status).toBe(200);
        await res.arrayBuffer();
      }
    }
  });
});
