/**
 * What a stranger's repository leaves in the visitor's data volume (found
 * by an attack on #24): a link builds the repository into one of the
 * visitor's own images, and repo2docker copies the repository into the
 * home, so its `work/…` is at the data's path in the image. A new volume is
 * filled from the user's own images, but never from one built from a
 * repository: no file of a stranger's (`work/ipykernel_launcher.py`, which a
 * kernel started in ~/work would run) lands in the data, where it would stay
 * for every later server in any image.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../server/audit/store.js';
import type { HubIdentity } from '../../server/hub/identity.js';
import { LaunchService } from '../../server/launch/service.js';
import { LaunchStore } from '../../server/launch/store.js';
import { RegistryClient } from '../../server/registry/client.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { staticCatalog } from '../../server/systems/schema.js';
import { WorkDir } from '../../server/workDir.js';
import { buildServices, type BuildServices } from '../support/builds.js';
import { pidsCgroup, type PidsCgroup } from '../support/cgroup.js';
import { ciDocker, removeDataVolumes, removeImagesFrom } from '../support/docker.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { testAccess, testUser } from '../support/identities.js';
import { debianBuildBase } from '../support/buildRegistry.js';
import { testSystem } from '../support/systems.js';

const SYSTEM = `ci-seed-${process.pid}`;
const launcher: HubIdentity = { kind: 'service', name: 'hook', admin: false, groups: [], scopes: ['custom:custom-images:launch'] };
/** This file's folder of the suite's build registry (test/support/buildRegistry.ts): its base and its builds. */
let folder: string;
let git: GitServer;
let docker: Docker;
let db: Knex;
let dir: string;
let services: BuildServices;
let steps: PidsCgroup;
let launches: LaunchService;

beforeAll(async () => {
  docker = ciDocker();
  git = await startGitServer();
  const debian = await debianBuildBase('seed/debian', { user: 'jovyan' });
  folder = `${debian.registry}/seed`;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-seed-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  steps = await pidsCgroup(docker, `ci-seed-${process.pid}`, 512);
  const systems = [
    testSystem({
      slug: SYSTEM,
      allowedRegistries: [`${folder}/*`],
      defaultMountPath: '/home/jovyan/work',
      build: {
        enabled: true,
        pushTo: `${folder}/built`,
        network: 'none',
        baseImages: [{ name: 'Debian', image: debian.image }],
      },
    }),
  ];
  services = buildServices(db, {
    keyring: await createKeyring([new Uint8Array(32).fill(9)]),
    trustedRegistries: [debian.registry],
    trustedGitHosts: [git.host],
    systems,
    timeoutMs: 300_000,
    cgroupParent: steps.parent,
    workDir: WorkDir.open(path.join(dir, 'work')),
  });
  launches = new LaunchService({
    audit: new AuditLog(db),
    access: testAccess,
    store: new LaunchStore(db),
    images: services.checkServices.images,
    systems: staticCatalog(systems),
    registry: new RegistryClient({ trustedHosts: [debian.registry] }),
    engine: services.engine,
  });
}, 300_000);

afterAll(async () => {
  if (docker) await removeDataVolumes(docker, SYSTEM);
  await steps?.remove();
  services?.workDir.close();
  await db?.destroy();
  // What the launches pulled into the engine (the suite's registry stays, with other files' images).
  if (folder) await removeImagesFrom([folder]);
  await git?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe("a stranger's repository and the visitor's data volume", { timeout: 600_000 }, () => {
  it("leaves no file of the repository in the visitor's persistent volume", async () => {
    git.commit('stranger/paper.git', {
      'paper.ipynb': '{"cells": []}\n',
      'work/ipykernel_launcher.py': 'print("the stranger runs in every kernel started in ~/work")\n',
    });
    // What LinkService.build queues for the visitor ada.
    const { image, build: queued } = await services.builds.create(
      testUser('ada'),
      'ada',
      { name: 'paper', system: SYSTEM, mode: 'repository', gitUrl: `${git.origin}/stranger/paper.git`, description: 'Opened from a link' },
      [],
    );
    const done = await services.run(queued.id);
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    const [check] = await services.checkServices.store.forImage('ada', image.id);
    expect((await services.checkServices.run(services.checks, check!.id)).status).toBe('passed');

    // What the spawner hook asks when the link starts ada's server.
    const launch = await launches.launch(launcher, 'ada', image.id);
    expect(launch.mount.target).toBe('/home/jovyan/work');
    const listing = execFileSync('docker', [
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'ls',
      '--mount',
      `type=volume,source=${launch.mount.volume},target=/v,volume-nocopy=true`,
      launch.image,
      '-A',
      '/v',
    ]).toString();
    expect(listing.split('\n')).not.toContain('ipykernel_launcher.py');
  });
});
