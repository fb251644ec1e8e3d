/**
 * The JSON API v1 for every endpoint and role, through a real hub with real
 * tokens: the user, another user (404), the hook's token (launch scope), a
 * hub admin, a token without scopes (403); bad ids and query values (400);
 * and the launch refusals with their messages.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testAccess } from '../support/identities.js';
import { buildStepsCgroup } from '../support/cgroup.js';
import { ciDocker, removeDataVolumes } from '../support/docker.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import type { HubIdentity } from '../../server/hub/identity.js';
import { LaunchResponseSchema } from '../../server/web/presenters/launch.js';
import { createApp } from '../../server/app.js';
import { WorkDir } from '../../server/workDir.js';
import { parseConfig } from '../../server/config.js';
import { createHubClient } from '../../server/hub/client.js';
import { createLogger } from '../../server/log.js';
import { RegistryClient } from '../../server/registry/client.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { SystemService } from '../../server/systems/service.js';
import { SystemStore } from '../../server/systems/store.js';
import { startHub, waitForCheck, type TestHub } from '../support/hub.js';
import { passingImage, pushImage, pythonWithJupyterhub } from '../support/images.js';
import { dockerSeed, writeSystemsFile } from '../support/systems.js';
import { PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';

let hub: TestHub;
let registries: TestRegistries;
let db: Knex;
const tokens: Record<string, string> = {};
const good = passingImage();

/** The seed fields of a system that builds, pushing to the open registry. */
let buildsOn: Record<string, unknown>;

beforeAll(async () => {
  registries = await startRegistries();
  buildsOn = {
    buildEnabled: true,
    buildPushTo: `${registries.open}/built`,
    buildNetwork: 'none',
    buildBaseImages: [`Base = ${registries.open}/lab/good:1`],
  };
  await pushImage(registries.open, 'lab/good', '1', good);
  await pushImage(registries.open, 'lab/moving', '1', good);
  await pushImage(registries.open, 'lab/broken', '1', { layers: [{ files: pythonWithJupyterhub() }] });
  await pushImage(registries.open, 'lab/root', '1', { ...good, user: '0' });
  const allowed = [`${registries.open}/*`, `${registries.basic}/*`];
  const systemsFile = writeSystemsFile([
    dockerSeed(allowed, buildsOn),
    dockerSeed(allowed, { slug: 'kube', displayName: 'Kubernetes', spawner: 'kubernetes', requireUid1000: true }),
    dockerSeed(allowed, { slug: 'off', displayName: 'Switched off', mountPrefixes: [], spawner: undefined }),
  ]);
  hub = await startHub(18400, {
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile,
    // Building needs a limit on processes (a system that builds is seeded).
    CUSTOM_IMAGES_BUILD_CGROUP_PARENT: await buildStepsCgroup(ciDocker()),
  });
  db = openDatabase(hub.databaseUrl);
  tokens.uma = await hub.userToken('uma');
  tokens.vic = await hub.userToken('vic');
  tokens.admin = await hub.userToken('admin');
  tokens.noscope = await hub.userToken('uma', { scopes: ['read:users:name!user=uma'] });
  tokens.launcher = hub.launchToken;
  // A hub admin's tokens that were not issued for this service: the token of their notebook server
  // (JupyterHub's server role; an image they launch can read it), and one with the admin scope only.
  tokens.adminServer = await hub.userToken('admin', { scopes: ['users:activity!user=admin', 'access:servers!user=admin'] });
  tokens.adminScopeOnly = await hub.userToken('admin', { scopes: ['custom:custom-images:admin'] });
}, 120_000);

afterAll(async () => {
  await db?.destroy();
  await hub?.stop();
  await registries?.stop();
  // The launches on the Docker system made data volumes in the engine.
  if (process.env.DOCKER_HOST) await removeDataVolumes(ciDocker(), 'dock');
});

async function api(who: string | undefined, method: string, p: string, body?: unknown) {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (who) headers.Authorization = `token ${tokens[who]}`;
  const res = await fetch(`${hub.serviceUrl}api/v1/${p}`, { method, headers, ...(body ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as Record<string, unknown> & Array<Record<string, unknown>> };
}

const ids: Record<string, number> = {};

describe('images and checks', () => {
  it('the user creates images; only they and the hook see them', async () => {
    const create = async (key: string, body: Record<string, unknown>) => {
      const res = await api('uma', 'POST', 'users/uma/images', body);
      expect(res.status).toBe(201);
      ids[key] = res.body.id as number;
    };
    await create('good', { system: 'dock', image: `${registries.open}/lab/good:1` });
    await create('kube', {
      system: 'kube',
      image: `${registries.basic}/lab/good:1`,
      registry: registries.basic,
      username: USER,
      password: PASSWORD,
    });
    await create('broken', { system: 'dock', image: `${registries.open}/lab/broken:1` });
    await create('never', { system: 'dock', image: `${registries.open}/lab/good:1`, name: 'never checked' });
    await create('moving', { system: 'kube', image: `${registries.open}/lab/moving:1` });
    await create('off', { system: 'off', image: `${registries.open}/lab/good:1` });

    expect((await api('uma', 'GET', 'users/uma/images')).body).toHaveLength(6);
    expect((await api('launcher', 'GET', 'users/uma/images')).body).toHaveLength(6);
    expect((await api('vic', 'GET', 'users/uma/images')).status).toBe(404);
    expect((await api('admin', 'GET', 'users/uma/images')).status).toBe(404);
    expect((await api('noscope', 'GET', 'users/uma/images')).status).toBe(403);
    expect((await api(undefined, 'GET', 'users/uma/images')).status).toBe(401);
    // Writes are the user's own.
    expect((await api('launcher', 'POST', 'users/uma/images', { system: 'dock', image: 'a/b:1' })).status).toBe(404);
    expect((await api('vic', 'DELETE', `users/uma/images/${ids.good}`)).status).toBe(404);
  });

  it('filters by system and status, and refuses bad query values and ids with 400', async () => {
    const kube = await api('uma', 'GET', 'users/uma/images?system=kube');
    expect(kube.body.map((i) => i.id).sort()).toEqual([ids.kube, ids.moving].sort());
    for (const query of ['system=no%20such!', 'status=great', 'color=red']) {
      const res = await api('uma', 'GET', `users/uma/images?${query}`);
      expect(res.status).toBe(400);
      expect(res.body.message).toBeTruthy();
    }
    for (const id of ['abc', '0', '-1', '1.5', '99999999999']) {
      expect((await api('uma', 'GET', `users/uma/images/${id}`)).status).toBe(400);
    }
    expect((await api('uma', 'GET', 'users/uma/images/999999')).status).toBe(404);
  });

  it('checks: the user and the hook may start one, others may not', async () => {
    const started = await api('uma', 'POST', `users/uma/images/${ids.good}/check`);
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ status: 'queued', image: `${registries.open}/lab/good:1` });
    const checkId = started.body.id as number;
    expect((await waitForCheck(hub, tokens.uma!, checkId)).status).toBe('passed');
    const run = async (who: string, key: string) =>
      (await waitForCheck(hub, tokens[who]!, (await api(who, 'POST', `users/uma/images/${ids[key]}/check`)).body.id as number)).status;
    expect(await run('launcher', 'kube')).toBe('passed');
    expect(await run('uma', 'broken')).toBe('failed');
    expect(await run('uma', 'moving')).toBe('passed');
    expect(await run('uma', 'off')).toBe('passed');
    expect((await api('vic', 'POST', `users/uma/images/${ids.good}/check`)).status).toBe(404);
    expect((await api('noscope', 'POST', `users/uma/images/${ids.good}/check`)).status).toBe(403);

    expect((await api('uma', 'GET', `checks/${checkId}`)).status).toBe(200);
    expect((await api('launcher', 'GET', `checks/${checkId}`)).status).toBe(200);
    expect((await api('vic', 'GET', `checks/${checkId}`)).status).toBe(404);
    expect((await api('noscope', 'GET', `checks/${checkId}`)).status).toBe(403);
    expect((await api('uma', 'GET', 'checks/nope')).status).toBe(400);
  });
});

describe('unknown paths and bodies', () => {
  it('answers an unknown API path with a JSON 404, not the login page', async () => {
    const res = await fetch(`${hub.serviceUrl}api/v1/users/uma/imagez`, {
      headers: { Authorization: `token ${tokens.uma}` },
      redirect: 'manual',
    });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(((await res.json()) as { message: string }).message).toContain('/users/uma/imagez');
  });

  it('reads no body before the token is known, and names a malformed one', async () => {
    const send = (who: string | undefined) =>
      fetch(`${hub.serviceUrl}api/v1/users/uma/images`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(who ? { Authorization: `token ${tokens[who]}` } : {}) },
        body: '{"system": ',
      });
    expect((await send(undefined)).status).toBe(401);
    const malformed = await send('uma');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { message: string }).message).toMatch(/JSON/);
    expect((await api('uma', 'GET', 'users/uma/images')).body).toHaveLength(6);
  });
});

describe('GET systems', () => {
  it('lists enabled systems to users and the hook, all to admins, nothing without scopes', async () => {
    const slugs = (res: { body: Array<Record<string, unknown>> }) => res.body.map((s) => s.slug).sort();
    expect(slugs(await api('uma', 'GET', 'systems'))).toEqual(['dock', 'kube', 'off']);
    expect(slugs(await api('launcher', 'GET', 'systems'))).toEqual(['dock', 'kube', 'off']);
    expect((await api('noscope', 'GET', 'systems')).status).toBe(403);
    expect((await api(undefined, 'GET', 'systems')).status).toBe(401);
  });
});

describe('admin routes (issue #22)', () => {
  it("answer a hub admin's token only when it carries the service's access scope as well", async () => {
    const shares = async () => (await api('uma', 'GET', `users/uma/images/${ids.good}/shares`)).body;
    for (const who of ['adminServer', 'adminScopeOnly']) {
      // The hub says who they are, an admin; the service refuses all the same, in words.
      expect((await api(who, 'GET', 'me')).body).toMatchObject({ name: 'admin', admin: true });
      const systems = await api(who, 'GET', 'systems');
      expect(systems.status, who).toBe(403);
      expect(systems.body.message).toContain('access:services!service=custom-images');
      expect((await api(who, 'GET', 'build-systems')).status, who).toBe(403);
      const publish = await api(who, 'PUT', `users/uma/images/${ids.good}/publish`, { description: 'by a stray token' });
      expect(publish.status, who).toBe(403);
      expect(publish.body.message).toMatch(/needs the scope access:services!service=custom-images/);
      expect(await shares()).toMatchObject({ published: null });
      expect((await api(who, 'DELETE', `users/uma/images/${ids.good}/publish`)).status, who).toBe(403);
    }
    // The admin's own token for the service (as the hub gives it: all the admin's scopes) works.
    expect((await api('admin', 'GET', 'systems')).status).toBe(200);
    expect((await api('admin', 'PUT', `users/uma/images/${ids.good}/publish`, { description: 'Course' })).status).toBe(200);
    expect(await shares()).toMatchObject({ published: { by: 'admin', description: 'Course' } });
    expect((await api('adminServer', 'DELETE', `users/uma/images/${ids.good}/publish`)).status).toBe(403);
    expect((await api('admin', 'DELETE', `users/uma/images/${ids.good}/publish`)).status).toBe(204);
    expect(await shares()).toMatchObject({ published: null });
  });
});

describe('GET build-systems (issue #22)', () => {
  it('answers only hub users with access to the service, and only the systems that build', async () => {
    const res = await api('uma', 'GET', 'build-systems');
    expect(res.status).toBe(200);
    expect(res.body).toEqual([
      {
        slug: 'dock',
        displayName: 'Docker hosts',
        network: 'none',
        baseImages: [{ name: 'Base', image: `${registries.open}/lab/good:1` }],
      },
    ]);
    for (const who of ['launcher', 'noscope', 'adminServer', 'adminScopeOnly']) {
      const refused = await api(who, 'GET', 'build-systems');
      expect(refused.status, who).toBe(403);
      expect(JSON.stringify(refused.body), who).not.toContain('lab/good');
    }
    expect((await api(undefined, 'GET', 'build-systems')).status).toBe(401);
  });
});

describe('a service without a build engine (issue #22)', () => {
  let engineless: { url: string; db: Knex; close(): Promise<void> };

  beforeAll(async () => {
    // The app as main.ts composes it, without an engine, on a database of its own (no replica there can
    // build), asking the test's hub who tokens belong to.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-engineless-'));
    const config = parseConfig({
      JUPYTERHUB_API_URL: hub.apiUrl,
      JUPYTERHUB_API_TOKEN: hub.serviceToken,
      CUSTOM_IMAGES_DATABASE_URL: `sqlite://${dir}/db.sqlite`,
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
      CUSTOM_IMAGES_BUILD_CGROUP_PARENT: await buildStepsCgroup(ciDocker()),
    });
    const edb = openDatabase(config.databaseUrl);
    await migrateLatest(edb);
    const built = createApp({
      config,
      db: edb,
      hub: createHubClient({ apiUrl: config.hub.apiUrl, apiToken: config.hub.apiToken }),
      logger: createLogger('silent'),
      keyring: await createKeyring([new Uint8Array(32).fill(6)]),
      registry: new RegistryClient({ trustedHosts: registries.trusted }),
      engine: undefined,
      workDir: WorkDir.open(path.join(dir, 'work')),
    });
    await built.seedSystems([dockerSeed([`${registries.open}/*`], buildsOn)]);
    built.worker.start();
    const server = built.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const { port } = server.address() as { port: number };
    engineless = {
      url: `http://127.0.0.1:${port}${config.service.prefix}api/v1/`,
      db: edb,
      async close() {
        await new Promise((r) => server.close(r));
        await built.worker.stop();
        await built.close();
        await edb.destroy();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  });

  afterAll(async () => {
    await engineless?.close();
  });

  it('refuses a build request with 503 in words, and queues nothing', async () => {
    const headers = { Authorization: `token ${tokens.uma}`, 'Content-Type': 'application/json' };
    expect((await fetch(`${engineless.url}build-systems`, { headers })).status).toBe(200);
    const res = await fetch(`${engineless.url}users/uma/builds`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'env', system: 'dock', mode: 'packages', base: 'Base', pip: 'xarray==2024.3.0' }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { message: string }).message).toMatch(/^This site has no build engine running .*nothing was queued/);
    expect(await engineless.db('images')).toEqual([]);
    expect(await engineless.db('builds')).toEqual([]);
    // This replica says that it is alive, and that it cannot build (its worker's first tick writes it).
    let rows: Array<{ can_build: unknown }> = [];
    for (let i = 0; i < 100 && rows.length === 0; i++) {
      rows = (await engineless.db('replicas')) as Array<{ can_build: unknown }>;
      if (rows.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(rows.map((r) => Boolean(r.can_build))).toEqual([false]);
  });
});

describe('launch', () => {
  it('gives the hook the image pinned by digest, the mount, the uid and a pull secret on Kubernetes', async () => {
    const res = await api('launcher', 'GET', `users/uma/images/${ids.kube}/launch`);
    expect(res.status).toBe(200);
    // The documented answer, and nothing else.
    expect(LaunchResponseSchema.strict().parse(res.body)).toEqual(res.body);
    expect(res.body).toMatchObject({
      image: expect.stringMatching(new RegExp(`^${registries.basic}/lab/good@sha256:[0-9a-f]{64}$`)),
      system: 'kube',
      spawner: 'kubernetes',
      mount: { volume: expect.stringMatching(/^jupyterhub-user-uma\.kube\.[0-9a-f]{64}$/), target: '/home/jovyan/work' },
      uid: 1000,
      gid: 100,
    });
    const pull = res.body.pull as { kind: string; dockerconfigjson: string };
    expect(pull.kind).toBe('kubernetes');
    expect(JSON.parse(pull.dockerconfigjson)).toEqual({
      auths: { [registries.basic]: { username: USER, password: PASSWORD, auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } },
    });
  });

  it('never gives the secret to the user themself', async () => {
    const res = await api('uma', 'GET', `users/uma/images/${ids.kube}/launch`);
    expect(res.status).toBe(200);
    expect(res.body.pull).toEqual({ kind: 'kubernetes', dockerconfigjson: null });
    expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
  });

  it('pulls the image onto the Docker host for a Docker system', async () => {
    const res = await api('launcher', 'GET', `users/uma/images/${ids.good}/launch`);
    expect(res.status).toBe(200);
    expect(res.body.pull).toEqual({ kind: 'docker', pulled: true });
    // The system's uid and gid, though the image says nothing.
    expect(res.body).toMatchObject({ uid: 1000, gid: 100 });
  });

  it('is refused to other users and tokens without scopes', async () => {
    expect((await api('vic', 'GET', `users/uma/images/${ids.good}/launch`)).status).toBe(404);
    expect((await api('admin', 'GET', `users/uma/images/${ids.good}/launch`)).status).toBe(404);
    expect((await api('noscope', 'GET', `users/uma/images/${ids.good}/launch`)).status).toBe(403);
    expect((await api('launcher', 'GET', 'users/uma/images/x/launch')).status).toBe(400);
  });

  it.each([
    ['never', /has not been checked yet/],
    ['broken', /The last check of .* failed: jupyterhub-singleuser is not on the image's PATH/],
  ])('refuses %s with 409 and a message for the researcher', async (key, message) => {
    const res = await api('launcher', 'GET', `users/uma/images/${ids[key]}/launch`);
    expect(res.status).toBe(409);
    expect(res.body.message).toMatch(message);
  });

  it('refuses when the tag now points to another image', async () => {
    await pushImage(registries.open, 'lab/moving', '1', { ...good, layers: [...good.layers, { files: { '/new': 'x' } }] });
    const res = await api('launcher', 'GET', `users/uma/images/${ids.moving}/launch`);
    expect(res.status).toBe(409);
    expect(res.body.message).toMatch(/now points to a different image than the one checked/);
  });

  it('refuses on a disabled system, and when its rules changed since the check', async () => {
    const store = new SystemStore(db);
    const off = (await store.get('off'))!;
    await store.update({ ...off, enabled: false }, new Date());
    const disabled = await api('launcher', 'GET', `users/uma/images/${ids.off}/launch`);
    expect(disabled.status).toBe(409);
    expect(disabled.body.message).toMatch(/Switched off does not offer custom images/);

    const dock = (await store.get('dock'))!;
    await store.update({ ...dock, policy: { ...dock.policy, requirePip: true } }, new Date());
    const changed = await api('launcher', 'GET', `users/uma/images/${ids.good}/launch`);
    expect(changed.status).toBe(409);
    expect(changed.body.message).toMatch(/rules of Docker hosts changed/);
    await store.update({ ...dock, policy: { ...dock.policy, runCheck: true } }, new Date());
    const needsRun = await api('launcher', 'GET', `users/uma/images/${ids.good}/launch`);
    expect(needsRun.status).toBe(409);
    await store.update(dock, new Date());
  });

  it("answers the system's uid and gid for an image that ends with USER 0", async () => {
    const created = await api('uma', 'POST', 'users/uma/images', {
      system: 'dock',
      image: `${registries.open}/lab/root:1`,
      name: 'root image',
    });
    const check = await waitForCheck(
      hub,
      tokens.uma!,
      (await api('uma', 'POST', `users/uma/images/${created.body.id}/check`)).body.id as number,
    );
    expect(check.status).toBe('passed');
    expect((check.findings as Array<{ code: string; message: string }>).find((f) => f.code === 'user.run_as')?.message).toMatch(
      /^This image runs as root; on this system it runs as uid 1000 \(jovyan\), gid 100/,
    );
    const res = await api('launcher', 'GET', `users/uma/images/${created.body.id}/launch`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ uid: 1000, gid: 100 });
  });

  it('refuses an image checked before an admin narrowed the mount prefixes or removed its registry pattern', async () => {
    const store = new SystemStore(db);
    const dock = (await store.get('dock'))!;
    const created = await api('uma', 'POST', 'users/uma/images', {
      system: 'dock',
      image: `${registries.open}/lab/good:1`,
      name: 'own path',
      mountPath: '/home/jovyan/results',
    });
    expect(created.status).toBe(201);
    await waitForCheck(hub, tokens.uma!, (await api('uma', 'POST', `users/uma/images/${created.body.id}/check`)).body.id as number);
    expect((await api('launcher', 'GET', `users/uma/images/${created.body.id}/launch`)).status).toBe(200);
    try {
      await store.update({ ...dock, mountPrefixes: ['/data'], defaultMountPath: '/data/work' }, new Date());
      const narrowed = await api('launcher', 'GET', `users/uma/images/${created.body.id}/launch`);
      expect(narrowed.status).toBe(409);
      expect(narrowed.body.message).toMatch(
        /The data path \/home\/jovyan\/results of "own path" is no longer allowed on Docker hosts: The mount path must be under \/data/,
      );
      await store.update({ ...dock, allowedRegistries: [`${registries.basic}/*`] }, new Date());
      const removed = await api('launcher', 'GET', `users/uma/images/${created.body.id}/launch`);
      expect(removed.status).toBe(409);
      expect(removed.body.message).toMatch(
        new RegExp(`Docker hosts no longer offers images from ${registries.open}/lab/good \\(allowed now: ${registries.basic}/\\*\\)`),
      );
    } finally {
      await store.update(dock, new Date());
    }
  });

  it("uses the hub admin's credential with the most specific pattern for an image without its own, and only for its registry", async () => {
    // As the admin pages store them, sealed with the service's key.
    const keyring = await createKeyring([
      new Uint8Array(Buffer.from(fs.readFileSync(path.join(hub.dir, 'crypt_key'), 'utf8').trim(), 'base64')),
    ]);
    const systems = new SystemService({ store: new SystemStore(db), keyring, access: testAccess });
    const admin: HubIdentity = { kind: 'user', name: 'admin', admin: true, groups: [], scopes: ['access:services'] };
    await systems.putCredential(admin, { pattern: `${registries.basic}/*`, username: 'whole-registry', password: 'not-this-one' });
    await systems.putCredential(admin, { pattern: `${registries.basic}/lab/*`, username: USER, password: PASSWORD });
    await systems.putCredential(admin, { pattern: `${registries.open}/*`, username: 'other-registry', password: 'nor-this-one' });

    const created = await api('uma', 'POST', 'users/uma/images', {
      system: 'kube',
      image: `${registries.basic}/lab/good:1`,
      name: 'site credential',
    });
    expect(created.status).toBe(201);
    const check = await api('uma', 'POST', `users/uma/images/${created.body.id}/check`);
    expect((await waitForCheck(hub, tokens.uma!, check.body.id as number)).status).toBe('passed');

    const res = await api('launcher', 'GET', `users/uma/images/${created.body.id}/launch`);
    expect(res.status).toBe(200);
    expect(JSON.parse((res.body.pull as { dockerconfigjson: string }).dockerconfigjson)).toEqual({
      auths: { [registries.basic]: { username: USER, password: PASSWORD, auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } },
    });
    // An image on the open registry is launched with that registry's credential, not the other's.
    const onOpen = await api('uma', 'POST', 'users/uma/images', {
      system: 'kube',
      image: `${registries.open}/lab/good:1`,
      name: 'open registry',
    });
    await waitForCheck(hub, tokens.uma!, (await api('uma', 'POST', `users/uma/images/${onOpen.body.id}/check`)).body.id as number);
    const openLaunch = await api('launcher', 'GET', `users/uma/images/${onOpen.body.id}/launch`);
    expect(openLaunch.status).toBe(200);
    expect(
      Object.values(
        JSON.parse((openLaunch.body.pull as { dockerconfigjson: string }).dockerconfigjson).auths as Record<string, { username: string }>,
      ),
    ).toEqual([expect.objectContaining({ username: 'other-registry' })]);
  });

  it('logs each request by its path, without query or token, and counts it by route for /metrics', async () => {
    const marker = `marker-${Date.now()}`;
    const res = await fetch(`${hub.serviceUrl}api/v1/users/uma/images/${ids.never}/launch?secret=${marker}`, {
      headers: { Authorization: `token ${tokens.launcher}` },
    });
    expect(res.status).toBe(409);
    const lines = hub
      .log()
      .split('\n')
      .filter((line) => line.includes(`/images/${ids.never}/launch`) && line.includes('"request completed"'));
    expect(lines.length).toBeGreaterThan(0);
    const last = JSON.parse(lines[lines.length - 1]!.slice(lines[lines.length - 1]!.indexOf('{'))) as {
      req: { method: string; path: string };
      res: { statusCode: number };
      responseTime: number;
    };
    expect(last).toMatchObject({
      req: { method: 'GET', path: `/services/custom-images/api/v1/users/uma/images/${ids.never}/launch` },
      res: { statusCode: 409 },
    });
    expect(hub.log()).not.toContain(marker);
    expect(hub.log()).not.toContain(tokens.launcher);

    expect((await fetch(`${hub.serviceUrl}metrics`, { headers: { Authorization: `token ${tokens.uma}` } })).status).toBe(403);
    const metrics = await (await fetch(`${hub.serviceUrl}metrics`, { headers: { Authorization: `token ${tokens.admin}` } })).text();
    const count = (status: string) =>
      Number(
        new RegExp(
          `custom_images_http_request_duration_seconds_count\\{method="GET",route="[^"]*/users/:name/images/:id/launch",status="${status}"\\} (\\d+)`,
        ).exec(metrics)?.[1] ?? 0,
      );
    expect(count('200')).toBeGreaterThanOrEqual(3);
    expect(count('409')).toBeGreaterThanOrEqual(1);
  });

  it('audits launches without the secret', async () => {
    const rows = (await db('audit').where({ action: 'image.launch' })) as Array<{ actor: string; details: string }>;
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(rows.map((r) => r.actor)).toContain('custom-images-launcher');
    for (const row of rows) expect(JSON.stringify(row)).not.toContain(PASSWORD);
  });
});
