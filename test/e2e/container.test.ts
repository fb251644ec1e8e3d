/**
 * The service as hubs deploy it: its container image, built from the
 * Dockerfile, run by Docker as an external service of a real JupyterHub, on
 * PostgreSQL, as two replicas; and the spawner hook installed with pip into a
 * virtual environment, its pytest suite run from there against them.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubLogin, launchBrowser, saveImageInForm, screenshot, waitForVerdict } from '../support/browser.js';
import { runHookTests, startHub, waitForCheck, type TestHub } from '../support/hub.js';
import { passingImage, pushImage } from '../support/images.js';
import { createTestDatabase } from '../support/postgres.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';
import { buildServiceImage, run } from '../support/serviceImage.js';

const HUB_PORT = 18700;
/** Where the demo hub expects its service (the proxy's port + 10); the second replica beside it. */
const PORTS = { a: HUB_PORT + 10, b: HUB_PORT + 20 };
const PREFIX = '/services/custom-images/';

let image: string;
let hub: TestHub;
let registries: TestRegistries;
let pg: { url: string; drop(): Promise<void> };
let db: Knex;
let browser: Browser;
const serviceToken = randomBytes(16).toString('hex');
const cryptKey = randomBytes(32).toString('base64');
const cookieSecret = randomBytes(24).toString('hex');
const containers = new Set<string>();
const volumes = new Set<string>();

interface Replica {
  name: string;
  /** The service's own address (not through the proxy), ending in the prefix. */
  url: string;
}

const replicaUrl = (port: number) => `http://127.0.0.1:${port}${PREFIX}`;

/** `docker inspect` of one field. */
async function inspect(name: string, format: string): Promise<string> {
  return (await run('docker', ['inspect', '--format', format, name])).trim();
}

/**
 * Runs the image as the manifests do: a read-only root, no capabilities, no privilege gain (host network
 * here, where no bridge can be made).
 */
async function startContainer(name: string, env: Record<string, string>, extra: string[] = []): Promise<void> {
  await run('docker', ['rm', '-f', '-v', name]).catch(() => undefined);
  const args = ['run', '-d', '--name', name, '--network', 'host', '--read-only', '--cap-drop', 'ALL'];
  args.push('--security-opt', 'no-new-privileges', '--health-interval', '1s', '--health-start-period', '60s');
  for (const [key, value] of Object.entries(env)) args.push('-e', `${key}=${value}`);
  containers.add(name);
  await run('docker', [...args, ...extra, image]);
}

/** Waits until Docker's HEALTHCHECK (the image's own) calls the container healthy. */
async function waitHealthy(name: string): Promise<void> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const [status, health] = (await inspect(name, '{{.State.Status}} {{.State.Health.Status}}')).split(' ');
    if (health === 'healthy') return;
    if (status !== 'running' || Date.now() > deadline) {
      throw new Error(`${name} is ${status}/${health}:\n${await run('docker', ['logs', name]).catch(String)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A replica of the service on PostgreSQL, as an external service of the test hub. */
async function startReplica(name: string, port: number): Promise<Replica> {
  await startContainer(name, {
    JUPYTERHUB_API_URL: `http://127.0.0.1:${HUB_PORT + 81}/hub/api`,
    JUPYTERHUB_API_TOKEN: serviceToken,
    JUPYTERHUB_SERVICE_URL: `http://127.0.0.1:${port}`,
    CUSTOM_IMAGES_DATABASE_URL: pg.url,
    CUSTOM_IMAGES_CRYPT_KEY: cryptKey,
    CUSTOM_IMAGES_COOKIE_SECRET: cookieSecret,
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    CUSTOM_IMAGES_LOG_LEVEL: 'debug',
  });
  await waitHealthy(name);
  return { name, url: replicaUrl(port) };
}

const logs = (name: string) => run('docker', ['logs', name]);

async function api(base: string, token: string, method: string, route: string, body?: unknown) {
  const res = await fetch(`${base}api/v1/${route}`, {
    method,
    headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Saves the test image as `user`'s `name` through one replica; returns its id. */
async function saveThrough(base: string, token: string, user: string, name: string): Promise<number> {
  const saved = await api(base, token, 'POST', `users/${user}/images`, { system: 'default', image: `${registries.open}/lab/env:1`, name });
  expect(saved.status).toBe(201);
  return Number(saved.body.id);
}

let a: Replica;
let b: Replica;

beforeAll(async () => {
  ({ tag: image } = await buildServiceImage());
  registries = await startRegistries();
  await pushImage(registries.open, 'lab/env', '1', passingImage());
  pg = await createTestDatabase();
  db = knexFactory({ client: 'pg', connection: pg.url, pool: { min: 0, max: 1 } });
  [a, b] = await Promise.all([startReplica('ci-deploy-a', PORTS.a), startReplica('ci-deploy-b', PORTS.b)]);
  hub = await startHub(HUB_PORT, { CUSTOM_IMAGES_DEMO_EXTERNAL_SERVICE: '1', CUSTOM_IMAGES_SERVICE_TOKEN: serviceToken });
  browser = await launchBrowser();
}, 1_200_000);

afterAll(async () => {
  await browser?.close();
  // The containers first: the hub's clean-up kills whatever holds the service's address.
  for (const name of containers) await run('docker', ['rm', '-f', '-v', name]).catch(() => undefined);
  for (const name of volumes) await run('docker', ['volume', 'rm', '-f', name]).catch(() => undefined);
  await hub?.stop();
  await db?.destroy();
  await pg?.drop();
  await registries?.stop();
});

describe('the container image', { timeout: 180_000 }, () => {
  it('runs as a non-root uid on a read-only root filesystem', async () => {
    expect(await inspect(a.name, '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}')).toBe('10001:10001 true');
    expect((await run('docker', ['exec', a.name, 'id', '-u'])).trim()).toBe('10001');
    const write = spawnSync('docker', ['exec', a.name, 'sh', '-c', 'touch /app/x'], { encoding: 'utf8' });
    expect(write.status).not.toBe(0);
    expect(write.stderr).toContain('Read-only file system');
    // Production dependencies only: the build stage's compilers and dev packages stayed behind.
    expect(spawnSync('docker', ['exec', a.name, 'test', '-e', 'node_modules/typescript']).status).not.toBe(0);
    expect(spawnSync('docker', ['exec', a.name, 'sh', '-c', 'command -v g++']).status).not.toBe(0);
  });

  it('keeps its SQLite database and its temporary files, and nothing else, in the /data volume', async () => {
    const name = 'ci-deploy-sqlite';
    const volume = `ci-deploy-data-${randomBytes(4).toString('hex')}`;
    volumes.add(volume);
    await startContainer(
      name,
      { JUPYTERHUB_API_URL: 'http://127.0.0.1:9/hub/api', JUPYTERHUB_API_TOKEN: 'x', JUPYTERHUB_SERVICE_URL: 'http://127.0.0.1:18730' },
      ['-v', `${volume}:/data`],
    );
    await waitHealthy(name);
    // The container's writes: its volume, nothing in the (read-only) image layers.
    expect((await run('docker', ['diff', name])).trim()).toBe('');
    // Temporary files (uploads, git checkouts) go to the process's folder in the volume's work directory, never /tmp.
    expect((await run('docker', ['exec', name, 'ls', '/data/work'])).trim()).toMatch(/^\S+\.\d+\.[0-9a-f]{8}$/);
    await run('docker', ['stop', name]);
    expect(await inspect(name, '{{.State.ExitCode}}')).toBe('0');
    const listing = await run('docker', [
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      `${volume}:/data`,
      '--entrypoint',
      'ls',
      image,
      '-ln',
      '/data',
    ]);
    expect(listing).toMatch(/10001 +10001 .* custom-images\.sqlite$/m);
  });

  it('runs as an arbitrary uid in the root group too, as OpenShift starts images', async () => {
    const name = 'ci-deploy-anyuid';
    const volume = `ci-deploy-data-${randomBytes(4).toString('hex')}`;
    volumes.add(volume);
    await startContainer(
      name,
      { JUPYTERHUB_API_URL: 'http://127.0.0.1:9/hub/api', JUPYTERHUB_API_TOKEN: 'x', JUPYTERHUB_SERVICE_URL: 'http://127.0.0.1:18731' },
      ['-v', `${volume}:/data`, '--user', '23456:0'],
    );
    await waitHealthy(name);
    await run('docker', ['stop', name]);
    expect(await inspect(name, '{{.State.ExitCode}}')).toBe('0');
  });
});

describe('an external service of the hub, on PostgreSQL', { timeout: 180_000 }, () => {
  it('a researcher logs in with Chromium, saves and checks an image, and the launch answers it', async () => {
    const { context, page } = await hubLogin(browser, hub, 'ada');
    expect(new URL(page.url()).pathname).toBe(PREFIX);
    await expect(page.getByTestId('signed-in-as').textContent()).resolves.toBe('ada');
    const id = await saveImageInForm(page, hub, { image: `${registries.open}/lab/env:1` });
    await page.locator(`#image-${id} [data-testid=check]`).click();
    expect(await waitForVerdict(page)).toBe('passed');
    await screenshot(page, 'container-check-passed');
    await context.close();

    const launch = await api(hub.serviceUrl, hub.launchToken, 'GET', `users/ada/images/${id}/launch`);
    expect(launch.status).toBe(200);
    expect(launch.body.image).toMatch(new RegExp(`^${registries.open}/lab/env@sha256:[0-9a-f]{64}$`));
  });

  it('two replicas: saved through one, launched through the other; a check queued on one runs once', async () => {
    const token = await hub.userToken('bob');
    const id = await saveThrough(b.url, token, 'bob', 'env');
    const queued = await api(b.url, token, 'POST', `users/bob/images/${id}/check`);
    expect(queued.status).toBe(202);
    const checkId = Number(queued.body.id);
    // Followed through the hub's proxy, which routes to the other replica.
    const check = await waitForCheck(hub, token, checkId);
    expect(check.status).toBe('passed');
    const row = (await db('checks').where({ id: checkId }).first()) as { attempts: number };
    expect(Number(row.attempts)).toBe(1);
    const finished = [
      ...(await logs(a.name)).matchAll(/"check":(\d+),.*"msg":"check finished"/g),
      ...(await logs(b.name)).matchAll(/"check":(\d+),.*"msg":"check finished"/g),
    ];
    expect(finished.filter((m) => Number(m[1]) === checkId)).toHaveLength(1);

    const throughA = await api(replicaUrl(PORTS.a), hub.launchToken, 'GET', `users/bob/images/${id}/launch`);
    const throughB = await api(b.url, hub.launchToken, 'GET', `users/bob/images/${id}/launch`);
    expect(throughA.status).toBe(200);
    expect(throughA.body).toEqual(throughB.body);
  });

  it('the hook installs with pip into a virtual environment and its pytest suite passes there', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-hook-venv-'));
    try {
      // A copy, so that the build's files stay out of the tree; the tests alone, so that only the installed hook can be imported.
      fs.cpSync('jupyterhub_config', path.join(dir, 'src'), { recursive: true, filter: (p) => !p.includes('vendor') });
      fs.cpSync('jupyterhub_config/tests', path.join(dir, 'tests'), { recursive: true });
      const venv = path.join(dir, 'venv');
      await run('/usr/bin/python3', ['-m', 'venv', '--system-site-packages', venv]);
      await run(path.join(venv, 'bin/pip'), ['install', '--no-deps', '--no-build-isolation', '--no-index', path.join(dir, 'src')]);
      fs.rmSync(path.join(dir, 'src'), { recursive: true });
      const where = await run(path.join(venv, 'bin/python'), ['-c', 'import custom_images_hook; print(custom_images_hook.__file__)'], {
        cwd: dir,
      });
      expect(where.trim().startsWith(`${venv}/`)).toBe(true);
      const output = runHookTests(hub, {
        python: path.join(venv, 'bin/python'),
        cwd: dir,
        tests: 'tests',
        image: `${registries.open}/lab/env:1`,
      });
      expect(output).toMatch(/\d+ passed/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes a build request with files on its read-only root (streamed to the data volume), and refuses one too large', async () => {
    const token = await hub.userToken('dave');
    const send = (bytes: number) => {
      const form = new FormData();
      form.set('name', 'uploaded');
      form.set('system', 'default');
      form.set('mode', 'dockerfile');
      form.set('dockerfile', `FROM ${registries.open}/lab/env:1`);
      form.append('files', new Blob([Buffer.alloc(bytes, 1)]), 'data.bin');
      return fetch(`${b.url}api/v1/users/dave/builds`, { method: 'POST', headers: { Authorization: `token ${token}` }, body: form });
    };
    // Read and written to /data/work: the answer is about the request (no system here builds), not a failure to store it.
    const read = await send(64 * 1024);
    expect(read.status).toBe(400);
    expect(await read.json()).toMatchObject({ field: 'system' });
    const tooLarge = await send(11 * 1024 * 1024);
    expect(tooLarge.status).toBe(413);
    expect(await tooLarge.json()).toMatchObject({ field: 'files' });
    expect((await run('docker', ['exec', b.name, 'sh', '-c', 'ls -A /data/work/*'])).trim()).toBe('');
  });

  it('docker stop ends a replica with exit 0; the other serves on, and nothing saved is lost', async () => {
    const token = await hub.userToken('carol');
    await saveThrough(a.url, token, 'carol', 'kept');
    await run('docker', ['stop', a.name]);
    expect(await inspect(a.name, '{{.State.ExitCode}}')).toBe('0');
    expect(await logs(a.name)).toMatch(/"msg":"stopped"/);
    const listed = await api(b.url, token, 'GET', 'users/carol/images');
    expect((listed.body as unknown as Array<{ name: string }>).map((i) => i.name)).toContain('kept');
    // Started again, the hub's replica answers with what was saved before.
    a = await startReplica(a.name, PORTS.a);
    const again = await api(hub.serviceUrl, token, 'GET', 'users/carol/images');
    expect((again.body as unknown as Array<{ name: string }>).map((i) => i.name)).toContain('kept');
  });
});
