/**
 * Sharing on a real hub: groups made through its API, a private image on a
 * registry with a password, the spawn form and the service's pages in
 * Chromium. Ada shares with the group `lab`; Bob is in it, Carol is not; an
 * admin publishes an image for everyone on a system, as the digest they saw.
 * Ada's build under the push path is read with the site's credential for
 * her and her receivers, and for nobody else.
 */
import { randomBytes } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubLogin, launchBrowser, screenshot } from '../support/browser.js';
import { ciDocker, removeImagesFrom, volumeEntries } from '../support/docker.js';
import { hubApi, startHub, stopServer, waitForCheck, type TestHub } from '../support/hub.js';
import { passingImage, pushImage } from '../support/images.js';
import { PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';
import { dockerSeed, writeSystemsFile } from '../support/systems.js';

let hub: TestHub;
let registries: TestRegistries;
let browser: Browser;
const tokens: Record<string, string> = {};
/** Data volumes made by launches for users of this file alone, removed at the end. */
const volumes: string[] = [];
/** Ada's private image (her registry password), on the Kubernetes system: the launch answers the pull secret. */
let privateId: number;
let privateCheckId: number;
/** The admin's public image on the Docker system. */
let publicId: number;

type Json = Record<string, unknown>;

async function api(who: string, method: string, route: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${hub.serviceUrl}api/v1/${route}`, {
    method,
    headers: { Authorization: `token ${tokens[who]}`, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Json) : {} };
}

const list = (body: Json) => body as unknown as Json[];

async function checked(who: string, id: number): Promise<number> {
  const started = await api(who, 'POST', `users/${who}/images/${id}/check`);
  expect(started.status).toBe(202);
  const check = await waitForCheck(hub, tokens[who]!, Number(started.body.id));
  expect(check.status).toBe('passed');
  return Number(started.body.id);
}

/** Saves Ada's image on the password-protected registry, with her login, on `system`; returns its id. */
async function savePrivate(system: string, name: string): Promise<number> {
  const saved = await api('ada', 'POST', 'users/ada/images', {
    system,
    name,
    image: `${registries.basic}/lab/env:1`,
    registry: registries.basic,
    username: USER,
    password: PASSWORD,
  });
  expect(saved.status).toBe(201);
  return Number(saved.body.id);
}

/** The labels of the hub's spawn form as `user` sees it, in order. */
async function spawnForm(user: string): Promise<string[]> {
  const { context, page } = await hubLogin(browser, hub, user);
  await page.goto(`${hub.url}/hub/spawn`);
  const labels = await page.locator('.custom-images-form label').allTextContents();
  await screenshot(page, `sharing-spawn-form-${user}`);
  await context.close();
  return labels.map((l) => l.replace(/\s+/g, ' ').trim());
}

beforeAll(async () => {
  registries = await startRegistries();
  // One storage behind both registries: pushed once, the image is private on the htpasswd one.
  await pushImage(registries.open, 'lab/env', '1', passingImage());
  await pushImage(registries.open, 'course/env', '1', passingImage());
  const allowed = [`${registries.open}/*`, `${registries.basic}/*`];
  hub = await startHub(19500, {
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    CUSTOM_IMAGES_SYSTEMS_FILE: writeSystemsFile([
      dockerSeed(allowed),
      // Built images are pushed under basic/built (building itself is not needed here).
      dockerSeed(allowed, { slug: 'kube', displayName: 'Kubernetes', spawner: 'kubernetes', buildPushTo: `${registries.basic}/built` }),
    ]),
    // A user removed from a group at the hub loses what it shares within a second.
    CUSTOM_IMAGES_AUTH_CACHE_SECONDS: '1',
  });
  for (const name of ['ada', 'bob', 'carol', 'dan']) tokens[name] = await hub.userToken(name);
  tokens.admin = await hub.userToken('admin', { admin: true });
  tokens.launcher = hub.launchToken;
  expect((await hubApi(hub, 'POST', '/groups/lab')).status).toBe(201);
  expect((await hubApi(hub, 'POST', '/groups/lab/users', { users: ['bob'] })).status).toBe(200);

  privateId = await savePrivate('kube', 'lab env');
  privateCheckId = await checked('ada', privateId);
  const course = await api('admin', 'POST', 'users/admin/images', {
    system: 'dock',
    name: 'course env',
    image: `${registries.open}/course/env:1`,
  });
  publicId = Number(course.body.id);
  await checked('admin', publicId);
  browser = await launchBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  await registries?.stop();
  // The data volumes this file's own users got, and the images its launches pulled.
  if (volumes.length > 0) {
    const docker = ciDocker();
    for (const volume of volumes) {
      await docker
        .getVolume(volume)
        .remove()
        .catch(() => undefined);
    }
  }
  if (registries) await removeImagesFrom(registries.trusted);
});

describe('sharing with a hub group', () => {
  it('Ada shares with lab only among the groups the hub knows; nothing changes on a bad group', async () => {
    const unknown = await api('ada', 'PUT', `users/ada/images/${privateId}/shares`, { groups: ['lab', 'no-such-group'] });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ field: 'groups', message: expect.stringContaining('"no-such-group"') });
    expect((await api('ada', 'GET', `users/ada/images/${privateId}/shares`)).body).toMatchObject({ groups: [] });
    const shared = await api('ada', 'PUT', `users/ada/images/${privateId}/shares`, { groups: ['lab'] });
    expect(shared.status).toBe(200);
    expect(shared.body).toEqual({ groups: ['lab'], published: null, launchesByOthers: 0 });
  });

  it("Bob sees it and launches it with his own volume and the system's uid, pulled with Ada's credential", async () => {
    const seen = list((await api('bob', 'GET', 'users/bob/shared')).body);
    expect(seen.map((i) => [i.id, i.owner, i.access, i.groups])).toContainEqual([privateId, 'ada', 'shared', ['lab']]);
    // Filtered as the own list is; a bad filter is the caller's mistake, named.
    expect(list((await api('bob', 'GET', 'users/bob/shared?system=dock')).body).map((i) => i.id)).not.toContain(privateId);
    expect(await api('bob', 'GET', 'users/bob/shared?status=fine')).toMatchObject({ status: 400, body: { field: 'status' } });
    // Never the credential or the registry login.
    expect(JSON.stringify(seen)).not.toContain(USER);
    expect(JSON.stringify(seen)).not.toContain('credential');

    const bobs = await api('launcher', 'GET', `users/bob/images/${privateId}/launch`);
    expect(bobs.status).toBe(200);
    const adas = await api('launcher', 'GET', `users/ada/images/${privateId}/launch`);
    expect(bobs.body).toMatchObject({ owner: 'ada', user: 'bob', uid: 1000, gid: 100 });
    expect((bobs.body.mount as Json).volume).toContain('-bob.');
    expect((bobs.body.mount as Json).volume).not.toBe((adas.body.mount as Json).volume);
    const secret = JSON.parse(String((bobs.body.pull as Json).dockerconfigjson)) as { auths: Record<string, { username: string }> };
    expect(secret.auths[registries.basic]?.username).toBe(USER);
    expect((await api('ada', 'GET', `users/ada/images/${privateId}/shares`)).body).toMatchObject({ launchesByOthers: 1 });
  });

  it('Carol, not in lab, gets 404 on every route of it and does not see it', async () => {
    expect(list((await api('carol', 'GET', 'users/carol/shared')).body).map((i) => i.id)).not.toContain(privateId);
    expect((await api('launcher', 'GET', `users/carol/images/${privateId}/launch`)).status).toBe(404);
    expect((await api('carol', 'POST', 'users/carol/copies', { from: privateId })).status).toBe(404);
    for (const [method, route] of [
      ['GET', `users/ada/images/${privateId}`],
      ['PUT', `users/ada/images/${privateId}`],
      ['DELETE', `users/ada/images/${privateId}`],
      ['GET', `users/ada/images/${privateId}/launch`],
      ['POST', `users/ada/images/${privateId}/check`],
      ['GET', `users/ada/images/${privateId}/shares`],
      ['PUT', `users/ada/images/${privateId}/shares`],
      ['GET', `checks/${privateCheckId}`],
    ] as const) {
      expect((await api('carol', method, route, method === 'PUT' ? { groups: ['lab'] } : undefined)).status, `${method} ${route}`).toBe(
        404,
      );
    }
    expect((await spawnForm('carol')).join('\n')).not.toContain('lab env');
  });

  it("Bob cannot read Ada's credential, edit, delete, re-share or read its check log, through the API or the pages", async () => {
    for (const [method, route] of [
      ['GET', `users/ada/images/${privateId}`],
      ['PUT', `users/ada/images/${privateId}`],
      ['DELETE', `users/ada/images/${privateId}`],
      ['PUT', `users/ada/images/${privateId}/shares`],
      ['DELETE', `users/ada/images/${privateId}/shares/lab`],
      ['GET', `checks/${privateCheckId}`],
    ] as const) {
      expect((await api('bob', method, route, method === 'PUT' ? { groups: ['lab'] } : undefined)).status, `${method} ${route}`).toBe(404);
    }
    const { context, page } = await hubLogin(browser, hub, 'bob');
    const tile = page.locator(`#shared-${privateId}`);
    await expect(tile.getByTestId('shared-owner').textContent()).resolves.toBe('ada');
    await expect(tile.textContent()).resolves.not.toContain(USER);
    await expect(tile.locator('a, [data-testid=edit], [data-testid=delete], [data-testid=share]').count()).resolves.toBe(0);
    await screenshot(page, 'sharing-shared-with-you');
    for (const path of [`images/${privateId}/edit`, `images/${privateId}/checks/${privateCheckId}`, `images/${privateId}/delete`]) {
      const res = await page.goto(`${hub.serviceUrl}${path}`);
      expect(res?.status(), path).toBe(404);
    }
    await context.close();
    expect(await spawnForm('bob')).toContainEqual(expect.stringContaining('lab env'));
  });

  it("Ada stops sharing: Bob's next start is refused in words; so is it once Bob leaves lab at the hub", async () => {
    expect((await api('ada', 'DELETE', `users/ada/images/${privateId}/shares/lab`)).body).toMatchObject({ groups: [] });
    const refused = await api('launcher', 'GET', `users/bob/images/${privateId}/launch`);
    expect(refused.status).toBe(404);
    expect(refused.body.message).toMatch(/not shared with you.*stopped sharing/);

    await api('ada', 'PUT', `users/ada/images/${privateId}/shares`, { groups: ['lab'] });
    expect((await api('launcher', 'GET', `users/bob/images/${privateId}/launch`)).status).toBe(200);
    expect((await hubApi(hub, 'DELETE', '/groups/lab/users', { users: ['bob'] })).status).toBe(200);
    // The hub's answer about Bob's groups is kept for the identity cache time (1 s here).
    await new Promise((r) => setTimeout(r, 1500));
    const gone = await api('launcher', 'GET', `users/bob/images/${privateId}/launch`);
    expect(gone.status).toBe(404);
    expect(gone.body.message).toMatch(/no longer in the group/);
    expect(list((await api('bob', 'GET', 'users/bob/shared')).body).map((i) => i.id)).not.toContain(privateId);
    await hubApi(hub, 'POST', '/groups/lab/users', { users: ['bob'] });
  });
});

describe('a shared image its owner deleted (issue #22)', () => {
  it("Bob's start is refused with the words of an unshared one, and so is an id that never was", async () => {
    // Bob is back in lab (previous test); the hub's answer about his groups is kept for 1 s.
    await new Promise((r) => setTimeout(r, 1500));
    const id = await savePrivate('kube', 'lab env (deleted later)');
    await checked('ada', id);
    await api('ada', 'PUT', `users/ada/images/${id}/shares`, { groups: ['lab'] });
    expect((await api('launcher', 'GET', `users/bob/images/${id}/launch`)).status).toBe(200);

    await api('ada', 'DELETE', `users/ada/images/${id}/shares/lab`);
    const unshared = await api('launcher', 'GET', `users/bob/images/${id}/launch`);
    expect(unshared.status).toBe(404);
    await api('ada', 'PUT', `users/ada/images/${id}/shares`, { groups: ['lab'] });
    expect((await api('ada', 'DELETE', `users/ada/images/${id}`)).status).toBe(204);
    const deleted = await api('launcher', 'GET', `users/bob/images/${id}/launch`);
    const never = await api('launcher', 'GET', `users/bob/images/2147483000/launch`);
    // The same answer, word for word: none tells Bob (or anyone trying ids) which ids exist.
    expect(deleted).toEqual(unshared);
    expect(never).toEqual(unshared);
  });
});

describe("a receiver's data volume (issue #22)", () => {
  it("is created empty for someone else's image, never filled from it; the owner's own launch fills theirs as before", async () => {
    // Users of this run only, so that their volumes are new.
    const suffix = randomBytes(3).toString('hex');
    const [owner, receiver, group] = [`own${suffix}`, `rcv${suffix}`, `vol${suffix}`];
    tokens[owner] = await hub.userToken(owner);
    await hub.userToken(receiver);
    expect((await hubApi(hub, 'POST', `/groups/${group}`)).status).toBe(201);
    expect((await hubApi(hub, 'POST', `/groups/${group}/users`, { users: [receiver] })).status).toBe(200);
    // The owner's image has a file at the mount path: a startup file IPython runs in every session there.
    const startup = '.ipython/profile_default/startup/00-owner.py';
    const image = passingImage();
    await pushImage(registries.open, 'lab/startup', '1', {
      ...image,
      layers: [...image.layers, { files: { [`/home/jovyan/work/${startup}`]: "print('the owner ran this')\n" } }],
    });
    const saved = await api(owner, 'POST', `users/${owner}/images`, {
      system: 'dock',
      name: 'startup env',
      image: `${registries.open}/lab/startup:1`,
    });
    expect(saved.status).toBe(201);
    const id = Number(saved.body.id);
    await checked(owner, id);
    expect((await api(owner, 'PUT', `users/${owner}/images/${id}/shares`, { groups: [group] })).status).toBe(200);

    const theirs = await api('launcher', 'GET', `users/${receiver}/images/${id}/launch`);
    expect(theirs.status).toBe(200);
    const own = await api('launcher', 'GET', `users/${owner}/images/${id}/launch`);
    expect(own.status).toBe(200);
    const volumeOf = (launch: { body: Json }) => String((launch.body.mount as Json).volume);
    volumes.push(volumeOf(theirs), volumeOf(own));
    const docker = ciDocker();
    // The receiver's volume: only its top directory, handed to the server's uid:gid.
    expect(await volumeEntries(docker, volumeOf(theirs), String(theirs.body.image))).toEqual([
      { name: '', type: 'directory', uid: 1000, gid: 100 },
    ]);
    // The owner's volume: the image's content at the mount path, as Docker fills a new volume.
    const owners = await volumeEntries(docker, volumeOf(own), String(own.body.image));
    expect(owners.map((e) => e.name)).toContain(startup);
    expect(owners.find((e) => e.name === '')).toMatchObject({ uid: 1000, gid: 100 });
  });
});

describe('starting a shared image from the hub', () => {
  it("Bob starts Ada's private image on the Docker system: the engine pulls it with her login, his server starts", async () => {
    const id = await savePrivate('dock', 'lab env (docker)');
    await checked('ada', id);
    await api('ada', 'PUT', `users/ada/images/${id}/shares`, { groups: ['lab'] });

    const { context, page } = await hubLogin(browser, hub, 'bob');
    await page.goto(`${hub.url}/hub/spawn`);
    await page.locator('label', { hasText: 'lab env (docker)' }).locator('input').check();
    await page.locator('form [type=submit]').click();
    await page.waitForURL(/\/user\/bob\//, { timeout: 60_000 });
    // The registry wants a password, Bob has none and no site credential exists: Ada's pulled it.
    expect(hub.log()).toMatch(
      new RegExp(
        `custom-images: launching ${registries.basic}/lab/env@sha256:[0-9a-f]{64} for bob on dock \\(mount jupyterhub-user-bob\\.dock\\.`,
      ),
    );
    await stopServer(hub, 'bob');
    // A form loaded while it was shared; Ada stops sharing before Bob presses Start: refused on the hub's page, in words.
    await page.goto(`${hub.url}/hub/spawn`);
    await page.locator('label', { hasText: 'lab env (docker)' }).locator('input').check();
    await api('ada', 'DELETE', `users/ada/images/${id}/shares/lab`);
    await page.locator('form [type=submit]').click();
    await page.waitForLoadState('networkidle');
    await expect(page.locator('body').textContent()).resolves.toContain('not shared with you');
    await screenshot(page, 'sharing-start-refused');
    await stopServer(hub, 'bob');
    // A form loaded now no longer offers it.
    await page.goto(`${hub.url}/hub/spawn`);
    await expect(page.locator('label', { hasText: 'lab env (docker)' }).count()).resolves.toBe(0);
    await context.close();
  }, 90_000);
});

describe("the owner's page", () => {
  it('shares through the tile: an unknown group is named next to the form and nothing changes; a known one is saved', async () => {
    const { context, page } = await hubLogin(browser, hub, 'ada');
    const tile = page.locator(`#image-${privateId}`);
    await tile.locator('summary').click();
    await tile.getByTestId('share-groups').fill('lab, ghosts');
    await tile.getByTestId('share-save').click();
    await expect(page.locator(`#image-${privateId} [data-testid=share-error]`).textContent()).resolves.toContain('"ghosts"');
    expect((await api('ada', 'GET', `users/ada/images/${privateId}/shares`)).body).toMatchObject({ groups: ['lab'] });
    // What she typed is still there to correct.
    await expect(page.locator(`#image-${privateId} [data-testid=share-groups]`).inputValue()).resolves.toBe('lab, ghosts');
    await screenshot(page, 'sharing-unknown-group');
    await page.locator(`#image-${privateId} [data-testid=share-groups]`).fill('');
    await page.locator(`#image-${privateId} [data-testid=share-save]`).click();
    await page.getByTestId('notice').filter({ hasText: 'Sharing of' }).waitFor();
    await expect(page.locator(`#image-${privateId} [data-testid=shared-with]`).textContent()).resolves.toContain('not shared');
    expect((await api('ada', 'GET', `users/ada/images/${privateId}/shares`)).body).toMatchObject({ groups: [] });
    await page.locator(`#image-${privateId} summary`).click();
    await page.locator(`#image-${privateId} [data-testid=share-groups]`).fill('lab');
    await page.locator(`#image-${privateId} [data-testid=share-save]`).click();
    await page.getByTestId('notice').filter({ hasText: 'Sharing of' }).waitFor();
    await expect(page.locator(`#image-${privateId} [data-testid=shared-with]`).textContent()).resolves.toContain('groups lab');
    // Bob's starts so far are counted on Ada's tile.
    expect(Number(await page.locator(`#image-${privateId} [data-testid=launches-by-others]`).textContent())).toBeGreaterThan(0);
    await screenshot(page, 'sharing-owner-tile');
    await context.close();
  });
});

describe('published by an admin', () => {
  it("only admins publish; an image with its owner's password only its owner", async () => {
    expect((await api('ada', 'PUT', `users/ada/images/${privateId}/publish`, { description: 'x' })).status).toBe(403);
    const others = await api('admin', 'PUT', `users/ada/images/${privateId}/publish`, { description: 'x' });
    expect(others.status).toBe(409);
    expect(others.body.message).toContain("ada's registry password");
    const published = await api('admin', 'PUT', `users/admin/images/${publicId}/publish`, { description: 'Course environment' });
    expect(published.status).toBe(200);
    expect(published.body).toMatchObject({ published: { by: 'admin', description: 'Course environment' } });
  });

  it('every user sees it first in the spawn form and can launch it with their own volume', async () => {
    for (const user of ['carol', 'bob']) {
      const seen = list((await api(user, 'GET', `users/${user}/shared`)).body);
      expect(seen[0]).toMatchObject({ id: publicId, owner: 'admin', access: 'published', description: 'Course environment' });
    }
    const labels = await spawnForm('carol');
    // The hub's standard environment stays first (chosen by default); then what is published.
    expect(labels[0]).toMatch(/^Standard environment/);
    expect(labels[1]).toContain('course env');
    expect(labels[1]).toContain('published: Course environment');
    const carols = await api('launcher', 'GET', `users/carol/images/${publicId}/launch`);
    expect(carols.status).toBe(200);
    expect(carols.body).toMatchObject({ owner: 'admin', user: 'carol' });
    expect((carols.body.mount as Json).volume).toContain('-carol.');

    expect((await api('admin', 'DELETE', `users/admin/images/${publicId}/publish`)).status).toBe(204);
    expect(list((await api('carol', 'GET', 'users/carol/shared')).body)).toEqual([]);
    expect((await api('launcher', 'GET', `users/carol/images/${publicId}/launch`)).status).toBe(404);
    await api('admin', 'PUT', `users/admin/images/${publicId}/publish`, { description: 'Course environment' });
  });

  it('Bob copies the published public image into his own images: a new image of his, with no credential', async () => {
    const copy = await api('bob', 'POST', 'users/bob/copies', { from: publicId });
    expect(copy.status).toBe(201);
    expect(copy.body).toMatchObject({ owner: 'bob', name: 'course env', image: `${registries.open}/course/env:1`, credential: null });
    expect(list((await api('bob', 'GET', 'users/bob/images')).body).map((i) => i.id)).toContain(copy.body.id);
    // A copy of Ada's private image leaves her password behind too.
    const privateCopy = await api('bob', 'POST', 'users/bob/copies', { from: privateId, name: 'my lab env' });
    expect(privateCopy.status).toBe(201);
    expect(privateCopy.body.credential).toBeNull();
  });
});

/** The launch answer's pull secret: who it logs in as, per registry. */
function pullLogins(body: Json): Record<string, string | undefined> {
  const secret = JSON.parse(String((body.pull as Json).dockerconfigjson)) as { auths: Record<string, { username: string }> };
  return Object.fromEntries(Object.entries(secret.auths).map(([registry, login]) => [registry, login.username]));
}

describe('a publication is of a digest', () => {
  /** The same passing image with other content: another digest. */
  const variant = (n: number) => ({
    ...passingImage(),
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `CI_VARIANT=${n}`],
  });

  it("serves the digest the admin saw; the owner's new check or edit withdraws it in words, until an admin publishes again", async () => {
    const first = await pushImage(registries.open, 'pub/env', '1', passingImage());
    const saved = await api('dan', 'POST', 'users/dan/images', { system: 'kube', name: 'dan env', image: `${registries.open}/pub/env:1` });
    expect(saved.status).toBe(201);
    const id = Number(saved.body.id);
    // Not before it is checked: there is no digest to publish.
    expect((await api('admin', 'PUT', `users/dan/images/${id}/publish`, { description: 'x' })).status).toBe(409);
    await checked('dan', id);
    const stale = await api('admin', 'PUT', `users/dan/images/${id}/publish`, { digest: `sha256:${'0'.repeat(64)}` });
    expect(stale).toMatchObject({ status: 409, body: { field: 'digest', message: expect.stringContaining(`it is now ${first.digest}`) } });
    const published = await api('admin', 'PUT', `users/dan/images/${id}/publish`, { description: 'Dan env', digest: first.digest });
    expect(published.body.published).toMatchObject({ digest: first.digest, withdrawn: null });
    expect(list((await api('carol', 'GET', 'users/carol/shared')).body).map((i) => i.id)).toContain(id);
    expect(await api('launcher', 'GET', `users/carol/images/${id}/launch`)).toMatchObject({ status: 200, body: { digest: first.digest } });

    // The tag moves to other content, and Dan checks again: what everyone was offered is gone.
    const second = await pushImage(registries.open, 'pub/env', '1', variant(2));
    await checked('dan', id);
    expect(list((await api('carol', 'GET', 'users/carol/shared')).body).map((i) => i.id)).not.toContain(id);
    const refused = await api('launcher', 'GET', `users/carol/images/${id}/launch`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toBe(
      `"dan env" was published for everyone, but dan changed it: it is now ${second.digest}, not the published ${first.digest}: the publication is withdrawn until an admin publishes it again.`,
    );
    expect((await api('dan', 'GET', `users/dan/images/${id}/shares`)).body.published).toMatchObject({
      digest: first.digest,
      withdrawn: expect.stringContaining(`dan changed it: it is now ${second.digest}`),
    });
    const publications = list((await api('admin', 'GET', 'publications')).body);
    expect(publications.find((p) => p.id === id)).toMatchObject({
      owner: 'dan',
      publication: { digest: first.digest, withdrawn: expect.any(String) },
    });
    expect((await api('carol', 'GET', 'publications')).status).toBe(403);
    // The admin's page says so.
    const { context, page } = await hubLogin(browser, hub, 'admin');
    await page.goto(`${hub.serviceUrl}admin/systems`);
    const row = page.locator(`[data-testid=publications] tr[data-image="${id}"]`);
    await expect(row.getByTestId('publication-state').textContent()).resolves.toMatch(/withdrawn\s+dan changed it/);
    await screenshot(page, 'sharing-publication-withdrawn');
    await context.close();

    // An edit withdraws it too, at once, before any check.
    const third = await pushImage(registries.open, 'pub/env', '2', variant(3));
    const edited = await api('dan', 'PUT', `users/dan/images/${id}`, {
      system: 'kube',
      name: 'dan env',
      image: `${registries.open}/pub/env:2`,
    });
    expect(edited.status).toBe(200);
    const afterEdit = await api('launcher', 'GET', `users/carol/images/${id}/launch`);
    expect(afterEdit.status).toBe(409);
    expect(afterEdit.body.message).toMatch(/dan changed it after it was published .*until an admin publishes it again/);
    expect((await spawnForm('carol')).join('\n')).not.toContain('dan env');

    // An admin publishes what it is now: offered again, as that digest.
    await checked('dan', id);
    const again = await api('admin', 'PUT', `users/dan/images/${id}/publish`, { description: 'Dan env, new', digest: third.digest });
    expect(again.body.published).toMatchObject({ digest: third.digest, withdrawn: null });
    expect(await api('launcher', 'GET', `users/carol/images/${id}/launch`)).toMatchObject({ status: 200, body: { digest: third.digest } });
  });
});

describe("a build under the push path is its owner's", () => {
  it('is read with the site credential for Ada and her receivers; Bob cannot save it as his, nor copy it', async () => {
    // The site's credential for built images: entered by the admin on their page.
    const { context, page } = await hubLogin(browser, hub, 'admin');
    await page.goto(`${hub.serviceUrl}admin/systems`);
    await page.fill('#f-pattern', `${registries.basic}/built/*`);
    await page.fill('#f-username', USER);
    await page.fill('#f-password', PASSWORD);
    await page.locator('form[action$="admin/credentials"] [type=submit]').click();
    await expect(page.getByTestId('credentials').textContent()).resolves.toContain(`${registries.basic}/built/*`);
    await context.close();

    // Ada's build, as the builder pushed it; she saves it without a password of her own.
    await pushImage(registries.open, 'built/ada/env', '1', passingImage());
    const image = `${registries.basic}/built/ada/env:1`;
    const saved = await api('ada', 'POST', 'users/ada/images', { system: 'kube', name: 'ada build', image });
    expect(saved.status).toBe(201);
    const id = Number(saved.body.id);
    await checked('ada', id);
    expect(pullLogins((await api('launcher', 'GET', `users/ada/images/${id}/launch`)).body)[registries.basic]).toBe(USER);

    const bobs = await api('bob', 'POST', 'users/bob/images', { system: 'kube', name: 'mine now', image });
    expect(bobs.status).toBe(400);
    expect(bobs.body).toMatchObject({ field: 'image', message: expect.stringContaining('not one of yours (yours are under') });
    expect(list((await api('bob', 'GET', 'users/bob/images')).body).map((i) => i.name)).not.toContain('mine now');

    // Shared with lab: Bob launches it, pulled with the site's login; Carol cannot.
    await api('ada', 'PUT', `users/ada/images/${id}/shares`, { groups: ['lab'] });
    const bobLaunch = await api('launcher', 'GET', `users/bob/images/${id}/launch`);
    expect(bobLaunch.status).toBe(200);
    expect(pullLogins(bobLaunch.body)[registries.basic]).toBe(USER);
    expect((await api('launcher', 'GET', `users/carol/images/${id}/launch`)).status).toBe(404);
    // A copy would outlive the share.
    const copy = await api('bob', 'POST', 'users/bob/copies', { from: id });
    expect(copy.status).toBe(409);
    expect(copy.body.message).toContain("is ada's build");

    // Published: Carol launches it too.
    expect((await api('admin', 'PUT', `users/ada/images/${id}/publish`, { description: 'Ada build' })).status).toBe(200);
    const carols = await api('launcher', 'GET', `users/carol/images/${id}/launch`);
    expect(carols.status).toBe(200);
    expect(pullLogins(carols.body)[registries.basic]).toBe(USER);
  });
});
