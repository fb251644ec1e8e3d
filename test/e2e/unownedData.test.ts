/**
 * Data nobody owns, on a real JupyterHub (the service is hub-managed, with
 * the role the demo configuration gives it), a real Docker engine and a real
 * registry: users launch an image (the service makes their data volume),
 * one is removed at the hub, one asks for their data to go, one's volume an
 * admin keeps. The removed user's volume is listed with its size and last
 * start, stays through its grace, is never removed while a container uses it,
 * and is removed once none does; every removal is audited. Volumes of users
 * the hub still has, and those of other tests on the engine, are left alone.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../server/store/db.js';
import { hubLogin, launchBrowser, screenshot } from '../support/browser.js';
import { ciDocker, removeDataVolumes, removeImagesFrom } from '../support/docker.js';
import { hubApi, startHub, waitForCheck, type TestHub } from '../support/hub.js';
import { pushImage } from '../support/images.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';

const LAYER = process.env.TEST_DEBIAN_JUPYTERHUB_LAYER;
const SYSTEM = 'cleanup-e2e';
const USERS = ['vanisher', 'keeper', 'asker', 'marked'] as const;

let hub: TestHub;
let registries: TestRegistries;
let docker: Docker;
let dir: string;
const tokens = new Map<string, string>();
/** Each user's data volume, as the launch answered it. */
const volumes = new Map<string, string>();
let pinned = '';

async function api(
  who: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> & unknown[] }> {
  const res = await fetch(`${hub.serviceUrl}api/v1/${route}`, {
    method,
    headers: { Authorization: `token ${tokens.get(who)}`, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as Record<string, unknown> & unknown[] };
}

/** Writes `bytes` of data into a volume, as a user's server would. */
async function writeInto(volume: string, bytes: number): Promise<void> {
  const container = await docker.createContainer({
    Image: pinned,
    Entrypoint: ['sh', '-c', `head -c ${bytes} /dev/urandom > /data/results.bin`],
    Cmd: [],
    HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: volume, Target: '/data' }] },
  });
  try {
    await container.start();
    expect(await container.wait()).toMatchObject({ StatusCode: 0 });
  } finally {
    await container.remove({ force: true });
  }
}

async function volumeExists(name: string): Promise<boolean> {
  return docker
    .getVolume(name)
    .inspect()
    .then(
      () => true,
      () => false,
    );
}

/** Asks for a clean-up and waits for its volumes run on this engine; returns that run. */
async function cleanUp(): Promise<Record<string, unknown>> {
  const queued = await api('admin', 'POST', 'storage/cleanup');
  expect(queued.status).toBe(202);
  const runs = queued.body as unknown as Array<{ id: number; kind: string }>;
  const volumesRun = runs.find((r) => r.kind === 'volumes');
  expect(volumesRun).toBeDefined();
  const deadline = Date.now() + 120_000;
  for (;;) {
    const run = (await api('admin', 'GET', `storage/cleanup/${volumesRun!.id}`)).body;
    if (run.status === 'succeeded' || run.status === 'failed') return run;
    if (Date.now() > deadline) throw new Error(`clean-up ${volumesRun!.id} still ${String(run.status)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

type VolumeView = {
  name: string;
  user: string;
  bytes: number | null;
  lastUsedAt: string | null;
  orphan: { reason: string } | null;
  next: string;
  id: number;
};

async function listed(): Promise<VolumeView[]> {
  return ((await api('admin', 'GET', 'storage')).body.volumes as VolumeView[]).filter((v) => [...volumes.values()].includes(v.name));
}

beforeAll(async () => {
  if (!LAYER || !fs.existsSync(LAYER))
    throw new Error('TEST_DEBIAN_JUPYTERHUB_LAYER is not set: run the tests through .ci/run (.ci/debian-image builds the image)');
  docker = ciDocker();
  registries = await startRegistries();
  const pushed = await pushImage(registries.open, 'lab/env', '1', { layers: [{ path: LAYER }] });
  pinned = `${registries.open}/lab/env@${pushed.digest}`;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-unowned-'));
  const systemsFile = path.join(dir, 'systems.json');
  fs.writeFileSync(
    systemsFile,
    JSON.stringify([
      {
        slug: SYSTEM,
        displayName: 'Clean-up',
        allowedRegistries: [`${registries.open}/*`],
        mountPrefixes: ['/home/jovyan'],
        defaultMountPath: '/home/jovyan/work',
        spawner: 'docker',
        enabled: true,
        volumeGraceDays: 1,
      },
    ]),
  );
  hub = await startHub(19700, {
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile,
    // Runs when the test asks: the schedule would run one at start-up, before the users exist.
    CUSTOM_IMAGES_CLEANUP_MINUTES: '0',
  });
  tokens.set('admin', await hub.userToken('admin'));
  tokens.set('launcher', hub.launchToken);
  for (const user of USERS) {
    tokens.set(user, await hub.userToken(user));
    const saved = await api(user, 'POST', `users/${user}/images`, { system: SYSTEM, image: `${registries.open}/lab/env:1` });
    expect(saved.status).toBe(201);
    const check = await api(user, 'POST', `users/${user}/images/${String(saved.body.id)}/check`);
    expect(await waitForCheck(hub, tokens.get(user)!, Number(check.body.id), 120_000)).toMatchObject({ status: 'passed' });
    const launch = await api('launcher', 'GET', `users/${user}/images/${String(saved.body.id)}/launch`);
    expect(launch.status).toBe(200);
    volumes.set(user, (launch.body.mount as { volume: string }).volume);
    await writeInto(volumes.get(user)!, 300_000);
  }
}, 900_000);

afterAll(async () => {
  await hub?.stop();
  await registries?.stop();
  if (registries) await removeImagesFrom(registries.trusted);
  if (docker) await removeDataVolumes(docker, SYSTEM);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('data nobody owns', () => {
  it("lists a removed user's volume, keeps it through the grace and while a container uses it, then removes it", async () => {
    for (const name of volumes.values()) expect(await volumeExists(name)).toBe(true);
    // Another user's data of another deployment on the same engine, with the same labels: never this service's to remove.
    const stranger = `jupyterhub-user-stranger.${SYSTEM}.${'0'.repeat(64)}`;
    await docker.createVolume({ Name: stranger, Labels: { 'custom-images.user': 'stranger', 'custom-images.system': SYSTEM } });

    expect((await hubApi(hub, 'DELETE', '/users/vanisher')).status).toBe(204);
    expect((await hubApi(hub, 'DELETE', '/users/marked')).status).toBe(204);
    expect((await api('asker', 'POST', 'users/asker/data/removal')).status).toBe(202);
    // Asking deleted the asker's image too.
    expect((await api('asker', 'GET', 'users/asker/images')).body).toEqual([]);

    expect(await cleanUp()).toMatchObject({ status: 'succeeded', summary: { removedVolumes: 0 } });
    let seen = await listed();
    const vanisher = seen.find((v) => v.user === 'vanisher');
    expect(vanisher).toMatchObject({ orphan: { reason: 'user_removed' }, next: 'grace' });
    expect(vanisher?.bytes).toBeGreaterThanOrEqual(300_000);
    expect(vanisher?.lastUsedAt).not.toBeNull();
    expect(seen.find((v) => v.user === 'keeper')).toMatchObject({ orphan: null, next: 'owned' });
    expect(seen.find((v) => v.user === 'asker')).toMatchObject({ orphan: { reason: 'user_asked' }, next: 'grace' });
    const marked = seen.find((v) => v.user === 'marked');
    expect((await api('admin', 'PUT', `storage/volumes/${marked!.id}/keep`)).body).toMatchObject({ next: 'kept' });

    // The grace ends (an admin shortens it to nothing); a container uses the removed user's data meanwhile.
    expect((await api('admin', 'PUT', `systems/${SYSTEM}/storage`, { volumeGraceDays: 0 })).body).toMatchObject({ volumeGraceDays: 0 });
    const user = await docker.createContainer({
      Image: pinned,
      Entrypoint: ['sleep', '600'],
      Cmd: [],
      Labels: { 'ci-test': 'unowned-data' },
      HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: volumes.get('vanisher')!, Target: '/home/jovyan/work' }] },
    });
    await user.start();
    try {
      const dry = (await api('admin', 'GET', 'storage/dry-run')).body as unknown as { volumes: { remove: VolumeView[] } };
      expect(dry.volumes.remove.map((v) => v.user).sort()).toEqual(expect.arrayContaining(['asker']));
      expect(await cleanUp()).toMatchObject({ status: 'succeeded', summary: { inUse: 1 } });
      expect(await volumeExists(volumes.get('vanisher')!)).toBe(true);
      seen = await listed();
      expect(seen.find((v) => v.user === 'vanisher')).toMatchObject({ next: 'in_use' });
    } finally {
      await user.remove({ force: true });
    }

    const last = await cleanUp();
    expect(last).toMatchObject({ status: 'succeeded', summary: { removedVolumes: 1 } });
    expect(await volumeExists(volumes.get('vanisher')!)).toBe(false);
    // The asker's went at the run before; the kept one, the owned one and the stranger's stay.
    expect(await volumeExists(volumes.get('asker')!)).toBe(false);
    expect(await volumeExists(volumes.get('marked')!)).toBe(true);
    expect(await volumeExists(volumes.get('keeper')!)).toBe(true);
    expect(await volumeExists(stranger)).toBe(true);
    await docker.getVolume(stranger).remove();

    const db = openDatabase(hub.databaseUrl);
    try {
      const removals = (await db('audit').where({ action: 'storage.volume.remove' }).select('details')) as Array<{ details: string }>;
      expect(removals.map((r) => JSON.parse(r.details) as { volume: string; reason: string })).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ volume: volumes.get('vanisher'), reason: 'user_removed' }),
          expect.objectContaining({ volume: volumes.get('asker'), reason: 'user_asked' }),
        ]),
      );
      expect(removals).toHaveLength(2);
    } finally {
      await db.destroy();
    }
  });

  it('shows admins storage on a page and in gauges, and users their quota and data', async () => {
    const metrics = await fetch(`${hub.serviceUrl}metrics`, { headers: { Authorization: `token ${tokens.get('admin')}` } });
    const text = await metrics.text();
    expect(text).toMatch(new RegExp(`custom_images_storage_system_bytes\\{system="${SYSTEM}",kind="volumes"\\} [1-9]`));
    expect(text).toMatch(/custom_images_storage_user_bytes\{user="keeper",system="cleanup-e2e",kind="volumes"\} [1-9]/);
    expect(text).toMatch(/custom_images_cleanup_last_run_success\{kind="volumes",engine="[^"]+"\} 1/);
    expect(text).toMatch(/custom_images_cleanup_last_run_removed\{kind="volumes",engine="[^"]+"\} 1/);

    const browser = await launchBrowser();
    try {
      const { page } = await hubLogin(browser, hub, 'admin');
      await page.goto(`${hub.serviceUrl}admin/storage`);
      expect(await page.locator('[data-testid=storage-users] tr[data-user=keeper]').count()).toBe(1);
      const marked = page.locator(`[data-testid=orphan-volumes] tr[data-volume="${volumes.get('marked')}"]`);
      expect(await marked.getByTestId('volume-next').innerText()).toBe('kept by admin');
      expect(await page.locator('[data-testid=cleanup-runs] tr[data-status=succeeded]').count()).toBeGreaterThan(0);
      await screenshot(page, 'storage-admin');
      await Promise.all([page.waitForURL('**/admin/storage/dry-run'), page.getByTestId('dry-run').click()]);
      expect(await page.getByTestId('dry-run-summary').count()).toBe(1);

      const keeper = await hubLogin(browser, hub, 'keeper');
      await keeper.page.goto(hub.serviceUrl);
      const quota = keeper.page.locator(`[data-testid=quota] tr[data-system="${SYSTEM}"]`);
      expect(await quota.getByTestId('quota-images').innerText()).toBe('1 of 50');
      await screenshot(keeper.page, 'storage-quota');
      await keeper.page.goto(`${hub.serviceUrl}data`);
      expect(await keeper.page.getByTestId('my-volumes').innerText()).toContain(volumes.get('keeper'));
      expect(await keeper.page.getByTestId('request-removal').count()).toBe(1);
    } finally {
      await browser.close();
    }
  });
});
