/**
 * Which data volume a launch on a Docker system mounts, on the real engine:
 * a user's volume from before names were one-to-one stays in use; a volume
 * under a user's old name that the service did not make for them (a
 * spawner's, or one made for another hub name that shares the old name) is
 * left alone, and the user gets a volume under the new name, labelled theirs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../server/audit/store.js';
import type { HubIdentity } from '../../server/hub/identity.js';
import { LaunchService } from '../../server/launch/service.js';
import { LaunchStore } from '../../server/launch/store.js';
import { dataVolumeName, legacyDataVolumeName } from '../../server/launch/volumes.js';
import { RegistryClient } from '../../server/registry/client.js';
import { DockerEngine, dockerFromHost } from '../../server/runner/engine.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { staticCatalog } from '../../server/systems/schema.js';
import { checkServices, type CheckServices } from '../support/checkServices.js';
import { ciDocker, removeDataVolumes } from '../support/docker.js';
import { testAccess, testUser } from '../support/identities.js';
import { passingImage, pushImage } from '../support/images.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';
import { testSystem } from '../support/systems.js';

/** A system slug of this run's own: the volumes it makes are found (and removed) by it. */
const SYSTEM = `ci-vol-${process.pid}`;
const launcher: HubIdentity = { kind: 'service', name: 'hook', admin: false, groups: [], scopes: ['custom:custom-images:launch'] };
let registries: TestRegistries;
let docker: Docker;
let db: Knex;
let dir: string;
let services: CheckServices;
let launches: LaunchService;
/** Volumes this test made by hand, removed at the end. */
const made: string[] = [];

/** Saves and checks `user`'s image on the system; returns its id. */
async function checkedImage(user: string): Promise<number> {
  const saved = await services.images.create(testUser(user), user, { system: SYSTEM, image: `${registries.open}/lab/env:1` });
  const checks = services.checks();
  const check = await checks.queue(user, saved.id);
  expect((await services.run(checks, check.id)).status).toBe('passed');
  return saved.id;
}

async function volume(name: string, labels: Record<string, string>): Promise<void> {
  await docker.createVolume({ Name: name, Labels: labels });
  made.push(name);
}

beforeAll(async () => {
  docker = ciDocker();
  registries = await startRegistries();
  await pushImage(registries.open, 'lab/env', '1', passingImage());
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-volumes-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  const registry = new RegistryClient({ trustedHosts: registries.trusted });
  const systems = [testSystem({ slug: SYSTEM, displayName: 'Volumes', allowedRegistries: [`${registries.open}/*`] })];
  services = checkServices(db, { registry, keyring: await createKeyring([new Uint8Array(32).fill(4)]), systems });
  launches = new LaunchService({
    audit: new AuditLog(db),
    access: testAccess,
    store: new LaunchStore(db),
    images: services.images,
    systems: staticCatalog(systems),
    registry,
    engine: new DockerEngine(dockerFromHost(process.env.DOCKER_HOST)),
  });
}, 120_000);

afterAll(async () => {
  for (const name of made)
    await docker
      ?.getVolume(name)
      .remove()
      .catch(() => undefined);
  if (docker) await removeDataVolumes(docker, SYSTEM);
  await db?.destroy();
  await registries?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the data volume of a launch', { timeout: 120_000 }, () => {
  it("keeps mounting a user's volume from before, under its old name", async () => {
    const id = await checkedImage('ada');
    const legacy = legacyDataVolumeName('ada', SYSTEM);
    await volume(legacy, { 'custom-images.owner': 'ada', 'custom-images.system': SYSTEM });
    const launch = await launches.launch(launcher, 'ada', id);
    expect(launch.mount.volume).toBe(legacy);
  });

  it.each([
    ['made by a spawner (no labels)', {}],
    ['made for another hub name that shares the old name', { 'custom-images.owner': 'Bob', 'custom-images.system': SYSTEM }],
  ])('leaves a volume under the old name alone when it was %s; the user gets their own, labelled theirs', async (_, labels) => {
    const user = `bob${Object.keys(labels).length}`;
    const id = await checkedImage(user);
    const legacy = legacyDataVolumeName(user, SYSTEM);
    await volume(legacy, labels);
    const launch = await launches.launch(launcher, user, id);
    expect(launch.mount.volume).toBe(dataVolumeName(user, SYSTEM));
    const created = (await docker.getVolume(launch.mount.volume).inspect()) as { Labels: Record<string, string> };
    expect(created.Labels).toMatchObject({ 'custom-images.user': user, 'custom-images.system': SYSTEM });
    // Untouched: still as it was made.
    expect(((await docker.getVolume(legacy).inspect()) as { Labels: Record<string, string> | null }).Labels ?? {}).toEqual(labels);
  });
});
