/**
 * A built image is its owner's: on a real registry with a password behind a
 * proxy on loopback that lists every request, with the site's credential
 * for the push path, Bob cannot save, build from, check, pull or launch
 * Alice's image under the push path (refused in words, and the registry
 * hears nothing of Alice's repository from it), while Alice's own image is
 * read with the credential. And a built image names the digest it was
 * pushed as: other content pushed to the tag later changes neither its
 * next check nor its launch.
 */
import { BuildInputsSchema } from '../../server/builds/inputs.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildStepsCgroup } from '../support/cgroup.js';
import { ciDocker } from '../support/docker.js';
import { AuditLog } from '../../server/audit/store.js';
import { BuildStore } from '../../server/builds/store.js';
import { AppError } from '../../server/errors.js';
import type { HubIdentity } from '../../server/hub/identity.js';
import { ImageStore } from '../../server/images/store.js';
import { LaunchService } from '../../server/launch/service.js';
import { LaunchStore } from '../../server/launch/store.js';
import { RegistryClient } from '../../server/registry/client.js';
import { parseReference } from '../../server/registry/reference.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import type { System } from '../../server/systems/schema.js';
import { SystemService } from '../../server/systems/service.js';
import { SystemStore } from '../../server/systems/store.js';
import { buildServices, type BuildServices } from '../support/builds.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { testAccess, testUser } from '../support/identities.js';
import { copyImage, passingImage, pushImage } from '../support/images.js';
import { faultyProxy, PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';
import { testSystem } from '../support/systems.js';

const LAYER = process.env.TEST_DEBIAN_JUPYTERHUB_LAYER;
let registries: TestRegistries;
/** The password-protected registry, through a proxy that lists what it is asked. */
let proxy: Awaited<ReturnType<typeof faultyProxy>>;
let git: GitServer;
let db: Knex;
let dir: string;
let systems: SystemService;
let services: BuildServices;
let launches: LaunchService;
let system: System;
let alicesManifest: Buffer;
const alice = testUser('alice');
const bob = testUser('bob');
const admin: HubIdentity = { ...testUser('root'), admin: true };
const launcher: HubIdentity = { kind: 'service', name: 'hook', admin: false, groups: [], scopes: ['custom:custom-images:launch'] };

/** Alice's image under the push path, pushed there as a build would be. */
const alicesImage = () => `${proxy.host}/built/alice/env:1`;

/** What the proxy was asked about Alice's repositories since `from` (an index into its list). */
const aliceRequests = (from: number) => proxy.requests.slice(from).filter((r) => r.includes('/built/alice/'));

async function refusal(promise: Promise<unknown>): Promise<AppError> {
  const err = await promise.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

/** Runs the newest check of one of `owner`'s images, as a worker would; returns it done. */
async function runCheck(owner: string, imageId: number) {
  const check = await services.checks.queue(owner, imageId);
  return services.checkServices.run(services.checks, check.id);
}

beforeAll(async () => {
  if (!LAYER || !fs.existsSync(LAYER))
    throw new Error('TEST_DEBIAN_JUPYTERHUB_LAYER is not set: run the tests through .ci/run (.ci/debian-image builds the image)');
  registries = await startRegistries();
  proxy = await faultyProxy(registries.basic);
  git = await startGitServer();
  // One storage behind every registry: pushed to the open one, it is on the password-protected one too.
  const debian = await pushImage(registries.open, 'base/debian', '1', { layers: [{ path: LAYER }] });
  // Alice's image, a real one (its check starts it), as her build would have pushed it.
  await copyImage(registries.open, 'base/debian', 'built/alice/env', '1', debian.manifest);
  alicesManifest = debian.manifest;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-ownership-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  const keyring = await createKeyring([new Uint8Array(32).fill(7)]);
  const buildStore = new BuildStore(db);
  systems = new SystemService({
    store: new SystemStore(db),
    keyring,
    access: testAccess,
    pushedBy: (repository) => buildStore.pushersOf(repository),
    buildProcessLimit: true,
  });
  system = testSystem({
    allowedRegistries: [`${registries.open}/*`, `${proxy.host}/*`],
    spawner: 'kubernetes',
    build: {
      enabled: true,
      pushTo: `${proxy.host}/built`,
      network: 'host',
      baseImages: [{ name: 'Debian', image: `${registries.open}/base/debian:1` }],
    },
  });
  await new SystemStore(db).insert(system, new Date());
  // The site reads and pushes everything on that registry with one account.
  await systems.putCredential(admin, { pattern: `${proxy.host}/*`, username: USER, password: PASSWORD });
  const trustedRegistries = [...registries.trusted, proxy.host];
  services = buildServices(db, {
    keyring,
    trustedRegistries,
    trustedGitHosts: [git.host],
    systems: [system],
    sites: systems,
    cgroupParent: await buildStepsCgroup(ciDocker()),
  });
  launches = new LaunchService({
    audit: new AuditLog(db),
    access: testAccess,
    store: new LaunchStore(db),
    images: services.checkServices.images,
    systems,
    registry: new RegistryClient({ trustedHosts: trustedRegistries }),
    engine: undefined,
  });
}, 300_000);

afterAll(async () => {
  await db?.destroy();
  await proxy?.stop();
  await registries?.stop();
  await git?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe("Alice's image under the push path", { timeout: 120_000 }, () => {
  it('is read with the site credential for Alice, and launched with it', async () => {
    const from = proxy.requests.length;
    const saved = await services.checkServices.images.create(alice, 'alice', { system: 'default', name: 'env', image: alicesImage() });
    const check = await runCheck('alice', saved.id);
    expect(check.status).toBe('passed');
    expect(aliceRequests(from).length).toBeGreaterThan(0);
    const launch = await launches.launch(launcher, 'alice', saved.id);
    const secret = JSON.parse(String((launch.pull as { dockerconfigjson: string }).dockerconfigjson)) as {
      auths: Record<string, { username: string }>;
    };
    expect(secret.auths[proxy.host]?.username).toBe(USER);
  });

  it('is refused to Bob, in words naming the field, in the image form and API; nothing is saved', async () => {
    const from = proxy.requests.length;
    const err = await refusal(services.checkServices.images.create(bob, 'bob', { system: 'default', image: alicesImage() }));
    expect(err.status).toBe(400);
    expect(err.field).toBe('image');
    expect(err.message).toMatch(
      new RegExp(
        `${proxy.host}/built/alice/env is under ${proxy.host}/built/.*not one of yours \\(yours are under ${proxy.host}/built/bob/\\)`,
      ),
    );
    // With his own password for the registry too: the push path is the service's.
    const own = await refusal(
      services.checkServices.images.create(bob, 'bob', {
        system: 'default',
        image: alicesImage(),
        registry: proxy.host,
        username: USER,
        password: PASSWORD,
      }),
    );
    expect(own.field).toBe('image');
    expect(await new ImageStore(db).list('bob')).toEqual([]);
    expect(aliceRequests(from)).toEqual([]);
  });

  it('is refused to Bob as a FROM or COPY --from of a Dockerfile he writes (400, the line named); nothing is stored', async () => {
    const from = proxy.requests.length;
    const fromLine = await refusal(
      services.builds.create(
        bob,
        'bob',
        { name: 'steal', system: 'default', mode: 'dockerfile', dockerfile: `FROM ${alicesImage()}\n` },
        [],
      ),
    );
    expect(fromLine).toMatchObject({ status: 400, field: 'dockerfile' });
    expect(fromLine.fields.dockerfile).toMatch(/^Line 1: .*not one of yours/);
    const copyLine = await refusal(
      services.builds.create(
        bob,
        'bob',
        {
          name: 'steal',
          system: 'default',
          mode: 'dockerfile',
          dockerfile: `FROM ${registries.open}/base/debian:1\nCOPY --from=${alicesImage()} /home /stolen\n`,
        },
        [],
      ),
    );
    expect(copyLine).toMatchObject({ status: 400, field: 'dockerfile' });
    expect(copyLine.fields.dockerfile).toMatch(/^Line 2: /);
    expect(await new ImageStore(db).list('bob')).toEqual([]);
    expect(aliceRequests(from)).toEqual([]);
  });

  it("is refused to Bob from his repository's Dockerfile, before the engine pulls anything", async () => {
    const from = proxy.requests.length;
    git.commit('bob/env.git', { Dockerfile: `FROM ${alicesImage()}\nRUN true\n` });
    const { build } = await services.builds.create(
      bob,
      'bob',
      { name: 'from-git', system: 'default', mode: 'dockerfile', gitUrl: `${git.origin}/bob/env.git` },
      [],
    );
    const done = await services.run(build.id);
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/^The Dockerfile cannot be built here: Line 1: .*not one of yours/);
    expect(done.steps).toBe(0);
    expect(aliceRequests(from)).toEqual([]);
  });

  it('is not checked, pulled or launched for Bob from a row saved before the rule, or before the path was a push path', async () => {
    // Bob saved it while the system had no push path (and checked it, read with the site's credential).
    await new SystemStore(db).update({ ...system, build: { ...system.build, enabled: false, pushTo: '' } }, new Date());
    const saved = await services.checkServices.images.create(bob, 'bob', { system: 'default', name: 'old', image: alicesImage() });
    expect((await runCheck('bob', saved.id)).status).toBe('passed');
    await new SystemStore(db).update(system, new Date());

    const from = proxy.requests.length;
    const launch = await refusal(launches.launch(launcher, 'bob', saved.id));
    expect(launch.status).toBe(409);
    expect(launch.message).toMatch(/^"old" cannot be started: .*not one of yours/);
    expect(await services.checkServices.images.pullCredentials('bob', saved.id, parseReference(alicesImage()))).toBeUndefined();
    const check = await runCheck('bob', saved.id);
    expect(check.status).toBe('failed');
    expect(check.findings).toEqual([
      expect.objectContaining({ code: 'registry.not_yours', message: expect.stringMatching(/not one of yours/) }),
    ]);
    expect(aliceRequests(from)).toEqual([]);
  });
});

describe('images built under the earlier, shared user components', { timeout: 120_000 }, () => {
  it("stay their builder's: the user whose component it is now can neither read nor overwrite them", async () => {
    // alice.smith built env before components were one-to-one: it went to the hub user alice-smith-634258's path.
    const legacy = `${proxy.host}/built/alice-smith-634258/env:1`;
    await copyImage(registries.open, 'built/alice/env', 'built/alice-smith-634258/env', '1', alicesManifest);
    const imageId = await new ImageStore(db).insert(
      {
        owner: 'alice.smith',
        name: 'env',
        system: 'default',
        referenceInput: legacy,
        reference: legacy,
        registry: proxy.host,
        mountPath: null,
      },
      new Date(),
    );
    // Her build, as it was recorded: who pushed where.
    await BuildStore.insert(db, {
      imageId,
      owner: 'alice.smith',
      number: 1,
      requestedBy: 'alice.smith',
      inputs: BuildInputsSchema.parse({ mode: 'dockerfile', dockerfile: `FROM ${registries.open}/base/debian:1\n` }),
      files: [],
      gitToken: null,
      target: legacy,
      createdAt: new Date(),
    });

    const images = services.checkServices.images;
    expect(await images.builtImageProblem(parseReference(legacy), 'alice.smith')).toBeUndefined();
    expect(await images.pullCredentials('alice.smith', imageId, parseReference(legacy))).toEqual({ username: USER, password: PASSWORD });
    const them = testUser('alice-smith-634258');
    const from = proxy.requests.length;
    const saved = await refusal(images.create(them, 'alice-smith-634258', { system: 'default', image: legacy }));
    expect(saved.field).toBe('image');
    const overwrite = await refusal(
      services.builds.create(
        them,
        'alice-smith-634258',
        { name: 'env', system: 'default', mode: 'dockerfile', dockerfile: `FROM ${registries.open}/base/debian:1\n` },
        [],
      ),
    );
    expect(overwrite).toMatchObject({
      status: 409,
      field: 'name',
      message: expect.stringContaining('holds images another user built earlier'),
    });
    expect(proxy.requests.slice(from).filter((r) => r.includes('/built/alice-smith-634258/'))).toEqual([]);
  });
});

describe('a built image names the digest it was pushed as', { timeout: 300_000 }, () => {
  it('keeps checking and launching what was built after other content is pushed to its tag', async () => {
    const { image, build } = await services.builds.create(
      alice,
      'alice',
      { name: 'pinned', system: 'default', mode: 'dockerfile', dockerfile: `FROM ${registries.open}/base/debian:1\nLABEL built=yes\n` },
      [],
    );
    const done = await services.run(build.id);
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    const target = `${proxy.host}/built/alice/pinned:1`;
    expect(done.target).toBe(target);
    const view = await services.checkServices.images.load('alice', image.id);
    expect(view.reference).toBe(`${target}@${done.digest}`);
    expect((await runCheck('alice', image.id)).status).toBe('passed');

    // Someone with the registry's password pushes other content to the same tag.
    const other = await pushImage(registries.open, 'built/alice/pinned', '1', passingImage());
    expect(other.digest).not.toBe(done.digest);

    const again = await runCheck('alice', image.id);
    expect(again.status).toBe('passed');
    expect(again.manifestDigest ?? again.digest).toBe(done.digest);
    const launch = await launches.launch(launcher, 'alice', image.id);
    expect(launch.digest).toBe(done.digest);
    expect(launch.image).toBe(`${proxy.host}/built/alice/pinned@${done.digest}`);
  });
});
