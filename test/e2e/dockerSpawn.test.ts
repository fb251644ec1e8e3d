/**
 * The promise end to end: a researcher's checked image becomes their notebook
 * server. A real JupyterHub with DockerSpawner 13 (host networking, as these
 * machines allow), a real Docker engine, registries with htpasswd and
 * without auth, Chromium at the hub's spawn form. The image is Debian with
 * Debian's jupyterhub package (.ci/debian-image), pushed to the registries.
 */
import fs from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerEngine } from '../../server/runner/engine.js';
import { hubLogin, launchBrowser, screenshot, waitForVerdict } from '../support/browser.js';
import { ciDocker, removeDataVolumes, removeImagesFrom } from '../support/docker.js';
import { startHub, startServer, stopServer, waitForCheck, waitForServer, type TestHub } from '../support/hub.js';
import { pushImage, type ImageSpec } from '../support/images.js';
import { faultyProxy, PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';

const LAYER = process.env.TEST_DEBIAN_JUPYTERHUB_LAYER;
const PREFIX = 'ci-spawn';
const SYSTEM = 'dock';

let hub: TestHub;
let registries: TestRegistries;
/** In front of the htpasswd registry: every request the engine or the service makes to it. */
let recorded: Awaited<ReturnType<typeof faultyProxy>>;
let docker: Docker;
let engine: DockerEngine;
let browser: Browser;
let page: Page;
let standardImage: string;
const debian = (): ImageSpec => ({ layers: [{ path: LAYER ?? '' }] });
const changed = (marker: string): ImageSpec => ({ layers: [{ path: LAYER ?? '' }, { files: { [`/etc/${marker}`]: marker } }] });
const tokens = new Map<string, string>();

beforeAll(async () => {
  if (!LAYER || !fs.existsSync(LAYER))
    throw new Error('TEST_DEBIAN_JUPYTERHUB_LAYER is not set: run the tests through .ci/run (.ci/debian-image builds the image)');
  docker = ciDocker();
  engine = new DockerEngine(docker);
  registries = await startRegistries();
  recorded = await faultyProxy(registries.basic);
  // One storage behind all registries: pushed once, the image is private on the htpasswd one.
  await pushImage(registries.open, 'lab/env', '1', debian());
  await pushImage(registries.open, 'lab/moving', '1', debian());
  await pushImage(registries.open, 'lab/failing', '1', debian());
  // The hub's standard environment: the same system, its own user, already in the engine as an admin would have it.
  await pushImage(registries.open, 'hub/standard', '1', { ...debian(), user: 'jovyan' });
  standardImage = `${registries.open}/hub/standard:1`;
  await engine.pull(standardImage, undefined);

  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'ci-dock-systems-'));
  const systemsFile = path.join(dir, 'systems.json');
  fs.writeFileSync(
    systemsFile,
    JSON.stringify([
      {
        slug: SYSTEM,
        displayName: 'Docker hosts',
        allowedRegistries: [`${recorded.host}/*`, `${registries.open}/*`],
        mountPrefixes: ['/home/jovyan'],
        defaultMountPath: '/home/jovyan/work',
        spawner: 'docker',
        enabled: true,
      },
    ]),
  );
  hub = await startHub(18600, {
    CUSTOM_IMAGES_DEMO_SPAWNER: 'docker',
    CUSTOM_IMAGES_DEMO_IMAGE: standardImage,
    CUSTOM_IMAGES_DEMO_CONTAINER_PREFIX: PREFIX,
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: [...registries.trusted, recorded.host].join(','),
    CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile,
  });
  for (const user of ['ada', 'bob', 'carol']) tokens.set(user, await hub.userToken(user));
  browser = await launchBrowser();
  ({ page } = await hubLogin(browser, hub, 'ada'));
}, 600_000);

afterAll(async () => {
  await browser?.close();
  for (const user of ['ada', 'bob', 'carol']) await stopServer(hub, user).catch(() => undefined);
  await hub?.stop();
  await recorded?.stop();
  await registries?.stop();
  if (recorded) await removeImagesFrom([recorded.host]);
  if (docker) await removeDataVolumes(docker, SYSTEM);
  await docker
    ?.getImage(standardImage)
    .remove()
    .catch(() => undefined);
});

/** The service's API as `user`. */
async function api(user: string, method: string, route: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${hub.serviceUrl}api/v1/${route}`, {
    method,
    headers: { Authorization: `token ${tokens.get(user)}`, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as Record<string, unknown>;
}

/** Saves and checks an image through the API; the check must pass. */
async function savedAndChecked(user: string, fields: Record<string, string>): Promise<number> {
  const image = await api(user, 'POST', `users/${user}/images`, { system: SYSTEM, ...fields });
  const job = await api(user, 'POST', `users/${user}/images/${String(image.id)}/check`);
  const check = await waitForCheck(hub, tokens.get(user) ?? '', Number(job.id), 180_000);
  expect(check.status, JSON.stringify(check.findings)).toBe('passed');
  return Number(image.id);
}

/** Waits until the service has the image in the engine ("Ready to start"). */
async function readyToStart(user: string, id: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const image = await api(user, 'GET', `users/${user}/images/${id}`);
    const start = image.start as { state: string; message: string | null } | null;
    if (start?.state === 'ready') return image;
    if (start?.state === 'failed') throw new Error(`pre-pull failed: ${start.message}`);
    if (Date.now() > deadline) throw new Error(`image ${id} not ready: ${JSON.stringify(start)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const container = (user: string) => docker.getContainer(`${PREFIX}-${user}`);
const containerExists = async (user: string) =>
  (await docker.listContainers({ all: true, filters: { name: [`^/${PREFIX}-${user}$`] } })).length > 0;

/** The server's own API through the hub's proxy, with the user's token. */
function server(user: string, route: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${hub.url}/user/${user}/api/${route}`, {
    ...init,
    headers: { Authorization: `token ${tokens.get(user)}`, 'Content-Type': 'application/json', ...init.headers },
  });
}

/** Chooses an environment in the hub's spawn form and presses Start. */
async function startFromForm(choice: string): Promise<void> {
  await page.goto(`${hub.url}/hub/spawn`);
  await page.locator(`input[name=image_id][value="${choice}"]`).check();
  await page.locator('form [type=submit]').click();
}

describe('a researcher starts their own image', { timeout: 300_000 }, () => {
  let adaImage: number;
  let pinned: string;

  it('saves a private image with credentials, checks it, and the tile reaches "Ready to start" with the image in the engine', async () => {
    await page.goto(`${hub.serviceUrl}images/new`);
    await page.fill('#f-name', 'lab env');
    await page.fill('#f-image', `${recorded.host}/lab/env:1`);
    await page.fill('#f-registry', recorded.host);
    await page.fill('#f-username', USER);
    await page.fill('#f-password', PASSWORD);
    await page.getByTestId('save').click();
    adaImage = Math.max(...(await page.getByTestId('tile').evaluateAll((els) => els.map((e) => Number(e.id.replace('image-', ''))))));
    await page.locator(`#image-${adaImage} [data-testid=check]`).click();
    expect(await waitForVerdict(page, 180_000)).toBe('passed');
    // What the check says about the user the server runs as.
    await expect(page.locator('[data-code="user.run_as"]').textContent()).resolves.toMatch(
      /This image runs as root; on this system it runs as uid 1000 \(jovyan\), gid 100/,
    );

    await page.goto(hub.serviceUrl);
    const tile = page.locator(`#image-${adaImage} [data-testid=start]`);
    await expect(tile.textContent({ timeout: 10_000 })).resolves.toMatch(/Preparing to start|Ready to start/);
    // The tiles update themselves until the image is in the engine.
    await page.locator(`#image-${adaImage} [data-testid=start][data-state=ready]`).waitFor({ timeout: 180_000 });
    await expect(tile.textContent()).resolves.toBe('Ready to start');
    await screenshot(page, 'tile-ready-to-start');

    const check = await api(
      'ada',
      'GET',
      `checks/${String(((await api('ada', 'GET', `users/ada/images/${adaImage}`)).status as { checkId: number }).checkId)}`,
    );
    pinned = `${recorded.host}/lab/env@${String(check.digest)}`;
    expect(await engine.hasImage(pinned)).toBe(true);
  });

  it('presses Start in the spawn form and reaches their server in that image, as the system uid, with the data volume; no registry download at Start', async () => {
    const before = recorded.requests.length;
    await startFromForm(`${SYSTEM}:${adaImage}`);
    await page.waitForURL(/\/user\/ada\//, { timeout: 120_000 });
    await screenshot(page, 'server-started');

    const status = await server('ada', 'status');
    expect(status.status).toBe(200);
    expect(await status.json()).toHaveProperty('started');

    const info = await container('ada').inspect();
    expect(info.Config.Image).toBe(pinned);
    expect(info.Config.User).toBe('1000:100');
    const mount = info.Mounts.find((m) => m.Destination === '/home/jovyan/work');
    expect(mount).toMatchObject({ Type: 'volume', RW: true });
    expect(mount?.Name).toMatch(/^jupyterhub-user-ada\.dock\.[0-9a-f]{64}$/);

    // The image was in the engine: the registry saw at most the tag's confirmation (a HEAD), never a download.
    const atStart = recorded.requests.slice(before);
    expect(atStart.filter((r) => !r.startsWith('HEAD ') && r !== 'GET /v2/')).toEqual([]);

    // No registry credential anywhere on the hub's side: its files, its log, the container.
    expect(hub.log()).not.toContain(PASSWORD);
    expect(JSON.stringify(info)).not.toContain(PASSWORD);
    for (const file of fs.readdirSync(hub.dir)) {
      const full = path.join(hub.dir, file);
      if (fs.statSync(full).isFile()) expect(fs.readFileSync(full).includes(PASSWORD), file).toBe(false);
    }
  });

  it('keeps a file written through the contents API across stop and start; another user does not see it', async () => {
    const note = { type: 'file', format: 'text', content: 'results of ada' };
    expect((await server('ada', 'contents/notes.txt', { method: 'PUT', body: JSON.stringify(note) })).status).toBe(201);
    await stopServer(hub, 'ada');
    expect(await containerExists('ada')).toBe(false);

    await startServer(hub, 'ada', { custom_images_system: SYSTEM, custom_images_image_id: adaImage });
    expect(await waitForServer(hub, 'ada')).toBe(true);
    const again = await server('ada', 'contents/notes.txt');
    expect(again.status).toBe(200);
    expect(((await again.json()) as { content: string }).content).toBe('results of ada');

    // Bob saves the same image with the same credentials: his server starts in it, with his own data.
    const bobImage = await savedAndChecked('bob', {
      image: `${recorded.host}/lab/env:1`,
      registry: recorded.host,
      username: USER,
      password: PASSWORD,
    });
    await startServer(hub, 'bob', { custom_images_system: SYSTEM, custom_images_image_id: bobImage });
    expect(await waitForServer(hub, 'bob')).toBe(true);
    expect((await server('bob', 'contents/notes.txt')).status).toBe(404);
    const bobMount = (await container('bob').inspect()).Mounts.find((m) => m.Destination === '/home/jovyan/work');
    expect(bobMount?.Name).toMatch(/^jupyterhub-user-bob\.dock\./);
    await stopServer(hub, 'bob');
  });

  it('shows the registry refusal of a wrong stored password at Start, and creates no container', async () => {
    const storePassword = (password: string) =>
      api('ada', 'PUT', `users/ada/images/${adaImage}`, {
        system: SYSTEM,
        name: 'lab env',
        image: `${recorded.host}/lab/env:1`,
        registry: recorded.host,
        username: USER,
        password,
      });
    await stopServer(hub, 'ada');
    await storePassword('not-the-password');
    await startFromForm(`${SYSTEM}:${adaImage}`);
    await page.waitForLoadState('networkidle');
    await screenshot(page, 'spawn-wrong-password');
    await expect(page.locator('body').textContent()).resolves.toMatch(/refused the username and password/);
    expect(await containerExists('ada')).toBe(false);
    expect(hub.log()).not.toContain('not-the-password');
    await stopServer(hub, 'ada');
    await storePassword(PASSWORD);
  });

  it("shows the service's message at Start for an image whose check failed since the form was loaded, and one whose tag moved", async () => {
    const failing = await savedAndChecked('ada', { image: `${registries.open}/lab/failing:1`, name: 'failing env' });
    const moving = await savedAndChecked('ada', { image: `${registries.open}/lab/moving:1`, name: 'moving env' });
    // Two spawn forms, loaded while both images are checked and offered ...
    const forms = [page, await page.context().newPage()];
    for (const form of forms) await form.goto(`${hub.url}/hub/spawn`);
    // ... then the first image is replaced by one without JupyterHub and checked again ...
    await pushImage(registries.open, 'lab/failing', '1', { layers: [{ files: { '/etc/passwd': 'root:x:0:0::/root:/bin/sh\n' } }] });
    const job = await api('ada', 'POST', `users/ada/images/${failing}/check`);
    expect((await waitForCheck(hub, tokens.get('ada') ?? '', Number(job.id))).status).toBe('failed');
    // ... and the second one's tag is moved to another image.
    await pushImage(registries.open, 'lab/moving', '1', changed('moved'));

    for (const [form, id, message] of [
      [forms[0], failing, /The last check of "failing env" failed: jupyterhub-singleuser is not on the image's PATH/],
      [forms[1], moving, /now points to a different image than the one checked/],
    ] as const) {
      if (!form) throw new Error('no form');
      await form.locator(`input[name=image_id][value="${SYSTEM}:${id}"]`).check();
      await form.locator('form [type=submit]').click();
      await form.waitForLoadState('networkidle');
      await expect(form.locator('body').textContent()).resolves.toMatch(message);
      expect(await containerExists('ada')).toBe(false);
      await stopServer(hub, 'ada');
    }
    await forms[1]?.close();
  });

  it("starts the hub's own image for the standard environment, with nothing from the service", async () => {
    const { page: carol, context } = await hubLogin(browser, hub, 'carol');
    try {
      await carol.goto(`${hub.url}/hub/spawn`);
      await expect(carol.locator('input[name=image_id][value=standard]').isChecked()).resolves.toBe(true);
      await carol.locator('form [type=submit]').click();
      await carol.waitForURL(/\/user\/carol\//, { timeout: 120_000 });
    } finally {
      await context.close();
    }
    const info = await container('carol').inspect();
    expect(info.Config.Image).toBe(standardImage);
    expect(info.Config.User).toBe('jovyan');
    expect(info.Config.Env.filter((e) => e.startsWith('CUSTOM_IMAGES_'))).toEqual([]);
    expect(info.Mounts.filter((m) => (m.Name ?? '').startsWith('jupyterhub-user-'))).toEqual([]);
    expect(hub.log()).not.toMatch(/custom-images: launching .* for carol/);
    await stopServer(hub, 'carol');
  });

  it('starts an image saved by digest without a single registry request', async () => {
    const digest = pinned.split('@')[1];
    const id = await savedAndChecked('bob', {
      image: `${recorded.host}/lab/env@${digest}`,
      registry: recorded.host,
      username: USER,
      password: PASSWORD,
      name: 'pinned env',
    });
    await readyToStart('bob', id);
    const before = recorded.requests.length;
    await startServer(hub, 'bob', { custom_images_system: SYSTEM, custom_images_image_id: id });
    expect(await waitForServer(hub, 'bob')).toBe(true);
    expect(recorded.requests.slice(before)).toEqual([]);
    await stopServer(hub, 'bob');
  });
});
