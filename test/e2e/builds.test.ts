/**
 * Building as a researcher does it, on a real JupyterHub, Docker engine and
 * registry, in Chromium: the build form with a base image, a requirement and
 * its wheel, the build page's live log, the tile going from building to
 * checked, and the launch answering the pushed digest. Then what an upload
 * too large gets from the API, and the service killed during a build.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildStore } from '../../server/builds/store.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { SystemStore } from '../../server/systems/store.js';
import { hubLogin, launchBrowser, screenshot } from '../support/browser.js';
import { buildServices, greetingWheel, type UploadedWheel } from '../support/builds.js';
import { pidsCgroup, type PidsCgroup } from '../support/cgroup.js';
import { ciDocker, removeImagesFrom } from '../support/docker.js';
import { debianBuildBase } from '../support/buildRegistry.js';
import { testUser } from '../support/identities.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { serviceApi, startHub, type TestHub } from '../support/hub.js';
import { startService } from '../support/service.js';
import { testSystem } from '../support/systems.js';

const SYSTEM = 'builder';
let hub: TestHub;
/** The suite's build registry (test/support/buildRegistry.ts), and this file's folder of it, where its images are. */
let registry: string;
let folder: string;
let browser: Browser;
let page: Page;
let dir: string;
let wheel: UploadedWheel;
let token: string;
let git: GitServer;
/** Building needs a limit on processes: the cgroup parent a host admin sets up. */
let steps: PidsCgroup;

beforeAll(async () => {
  ({ registry } = await debianBuildBase('e2e-builds/base/debian'));
  folder = `${registry}/e2e-builds`;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-e2e-builds-'));
  wheel = greetingWheel(dir);
  const systemsFile = path.join(dir, 'systems.json');
  fs.writeFileSync(
    systemsFile,
    JSON.stringify([
      {
        slug: SYSTEM,
        displayName: 'Builds here',
        allowedRegistries: [`${folder}/*`],
        mountPrefixes: ['/home/jovyan'],
        defaultMountPath: '/home/jovyan/work',
        spawner: 'docker',
        enabled: true,
        runCheck: true,
        buildEnabled: true,
        // The default bridge cannot be created on these machines: build steps use the host's network.
        buildNetwork: 'host',
        buildPushTo: `${folder}/built`,
        buildBaseImages: [`Debian with JupyterHub = ${folder}/base/debian:1`],
      },
    ]),
  );
  git = await startGitServer();
  steps = await pidsCgroup(ciDocker(), `ci-e2e-builds-${process.pid}`, 1024);
  hub = await startHub(18900, {
    CUSTOM_IMAGES_BUILD_CGROUP_PARENT: steps.parent,
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registry,
    CUSTOM_IMAGES_TRUSTED_GIT_HOSTS: git.host,
    CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile,
    CUSTOM_IMAGES_BUILD_UPLOAD_MAX_KB: '512',
    CUSTOM_IMAGES_RUN_CHECKS: 'true',
  });
  token = await hub.userToken('ada');
  browser = await launchBrowser();
  ({ page } = await hubLogin(browser, hub, 'ada'));
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  // What the engine pulled from this file's folder (the registry itself serves the whole run).
  if (folder) await removeImagesFrom([folder]);
  await git?.stop();
  await steps?.remove();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const api = (method: string, route: string, body?: unknown) => serviceApi(hub, token, method, route, body);

describe('building in the browser', { timeout: 600_000 }, () => {
  it('builds base image + a pip package, streams the log, checks it, and the launch answers the pushed digest', async () => {
    await page.goto(hub.serviceUrl);
    await page.getByTestId('build-image').click();
    await page.fill('#f-name', 'greeting-env');
    await page.getByTestId('mode-packages').check();
    await page.selectOption('#f-base', 'Debian with JupyterHub');
    await page.fill('#f-pip', '--no-index\nci-greeting==1.0\n');
    await page.getByTestId('files').setInputFiles({ name: wheel.name, mimeType: 'application/octet-stream', buffer: wheel.content });
    await page.getByTestId('build').click();
    await page.waitForURL(/\/images\/\d+\/builds\/1$/);
    const imageId = Number(/images\/(\d+)\/builds/.exec(page.url())?.[1]);
    // The page follows the build live, then reloads when it has ended.
    await page
      .locator('[data-testid=build-status][data-status=succeeded], [data-testid=build-status][data-status=failed]')
      .waitFor({ timeout: 300_000 });
    await screenshot(page, 'build-page');
    if ((await page.getByTestId('build-status').getAttribute('data-status')) !== 'succeeded') {
      console.log(await page.getByTestId('build-status').textContent(), await page.getByTestId('build-log').textContent());
    }
    expect(await page.getByTestId('build-status').getAttribute('data-status')).toBe('succeeded');
    await expect(page.getByTestId('build-log').textContent()).resolves.toMatch(/Successfully installed ci-greeting-1.0/);
    await expect(page.getByTestId('build-dockerfile').textContent()).resolves.toContain(`FROM ${folder}/base/debian:1`);
    const digest = (await page.getByTestId('build-digest').textContent())?.trim();
    expect(digest).toMatch(/^sha256:/);

    // The tile: building, then checked OK once the run check passed.
    await page.goto(hub.serviceUrl);
    const tile = page.locator(`#image-${imageId}`);
    await expect(tile.getByTestId('tile-build').textContent()).resolves.toContain('Build 1: Built');
    await tile.locator('[data-testid=status].badge-passed').waitFor({ timeout: 180_000 });
    await screenshot(page, 'build-tile');

    const launch = await fetch(`${hub.serviceUrl}api/v1/users/ada/images/${imageId}/launch`, {
      headers: { Authorization: `token ${hub.launchToken}` },
    });
    const answer = (await launch.json()) as { image: string };
    if (launch.status !== 200) console.log(answer);
    expect(launch.status).toBe(200);
    expect(answer.image).toBe(`${folder}/built/ada/greeting-env@${digest}`);
  });

  it('shows a refused request next to its field, and keeps nothing', async () => {
    await page.goto(`${hub.serviceUrl}builds/new`);
    await page.fill('#f-name', 'bad-requirements');
    await page.selectOption('#f-base', 'Debian with JupyterHub');
    await page.fill('#f-pip', 'numpy==1.26\nthis is not a package\n');
    await page.getByTestId('build').click();
    await screenshot(page, 'build-form-refused');
    // What was typed comes back as typed (a Dockerfile or requirements shown back must not change).
    expect(await page.inputValue('#f-pip')).toBe('numpy==1.26\nthis is not a package\n');
    await expect(page.getByTestId('error-pip').textContent()).resolves.toMatch(/Line 2: "this is not a package" is not a requirement/);
    const images = await api('GET', 'users/ada/images');
    expect((images.body as unknown as Array<{ name: string }>).map((i) => i.name)).not.toContain('bad-requirements');
  });

  it("keeps a private repository's token out of every page, answer and log", async () => {
    const secret = git.token;
    git.commit('private/course.git', { 'notes.txt': 'course material\n' });
    const created = await api('POST', 'users/ada/builds', {
      name: 'course-env',
      system: SYSTEM,
      mode: 'dockerfile',
      dockerfile: `FROM ${folder}/base/debian:1\nCOPY notes.txt /notes.txt\n`,
      gitUrl: `${git.origin}/private/course.git`,
      gitRef: 'main',
      gitToken: secret,
    });
    expect(created.status).toBe(202);
    const imageId = (created.body.image as { id: number }).id;
    let build = await api('GET', `users/ada/images/${imageId}/builds/1`);
    for (let i = 0; i < 600 && (build.body.status === 'queued' || build.body.status === 'running'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      build = await api('GET', `users/ada/images/${imageId}/builds/1`);
    }
    expect(build.body.status).toBe('succeeded');
    const pages: string[] = [JSON.stringify(created.body), JSON.stringify(build.body)];
    for (const route of [`images/${imageId}/builds/1`, `images/${imageId}/rebuild`, '']) {
      await page.goto(`${hub.serviceUrl}${route}`);
      pages.push(await page.content());
    }
    // A refused edit still keeps the stored token, and the form says so again.
    await page.goto(`${hub.serviceUrl}images/${imageId}/rebuild`);
    await page.fill('#f-dockerfile', 'FROM docker.io/library/python:3.12\n');
    await page.getByTestId('build').click();
    await expect(page.getByTestId('error-dockerfile').textContent()).resolves.toMatch(/is not among the registries/);
    await expect(page.locator('#h-gitToken').textContent()).resolves.toContain('A token is stored; leave this blank to keep it.');
    pages.push(await page.content());
    expect(pages.join('\n')).toContain('token stored');
    for (const text of [...pages, hub.log()]) expect(text).not.toContain(secret);
  });

  it('says the same of a building image in the API and on its tile, while it builds and once it is checked', async () => {
    const created = await api('POST', 'users/ada/builds', {
      name: 'slow-env',
      system: SYSTEM,
      mode: 'dockerfile',
      dockerfile: `FROM ${folder}/base/debian:1\nRUN sleep 10\n`,
    });
    expect(created.status).toBe(202);
    const imageId = (created.body.image as { id: number }).id;
    // Queued, preparing, building or pushing: the tile and the API name the status alike while the build goes on.
    await page.goto(hub.serviceUrl);
    const badge = page.locator(`#image-${imageId} [data-testid=status]`);
    expect(await badge.getAttribute('class')).toContain('badge-building');
    const answer = await api('GET', `users/ada/images/${imageId}`);
    expect(answer.body.status).toMatchObject({
      code: 'building',
      label: expect.stringMatching(/^(Build queued|Preparing the build|Building|Pushing)/),
    });
    expect(await badge.textContent()).toMatch(/^(Build queued|Preparing the build|Building|Pushing)/);
    let build = await api('GET', `users/ada/images/${imageId}/builds/1`);
    for (let i = 0; i < 600 && (build.body.status === 'queued' || build.body.status === 'running'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      build = await api('GET', `users/ada/images/${imageId}/builds/1`);
    }
    expect(build.body.status).toBe('succeeded');
    let image = await api('GET', `users/ada/images/${imageId}`);
    for (let i = 0; i < 900 && (image.body.status as { code: string }).code !== 'passed'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      image = await api('GET', `users/ada/images/${imageId}`);
    }
    expect(image.body.status).toMatchObject({ code: 'passed', label: 'Checked OK' });
    await page.goto(hub.serviceUrl);
    expect(await badge.getAttribute('class')).toContain('badge-passed');
  });

  it('answers malformed files in a JSON request with 400 naming files, and keeps serving', async () => {
    const refused = await api('POST', 'users/ada/builds', {
      name: 'bad-files',
      system: SYSTEM,
      mode: 'dockerfile',
      dockerfile: `FROM ${folder}/base/debian:1\n`,
      files: [{ name: 'a.txt', content: 'YQ==' }, { name: 7 }],
    });
    expect(refused.status).toBe(400);
    expect(refused.body.field).toBe('files');
    expect(refused.body.message).toMatch(/files\[1\] is \{"name": "\.\.\.", "content": "<base64>"\}/);
    expect((await api('GET', 'users/ada/images')).status).toBe(200);
    expect(((await api('GET', 'users/ada/images')).body as unknown as Array<{ name: string }>).map((i) => i.name)).not.toContain(
      'bad-files',
    );
  });

  it('answers an upload over the limit with 413 naming the files, and builds nothing', async () => {
    const form = new FormData();
    form.set('name', 'too-big');
    form.set('system', SYSTEM);
    form.set('mode', 'dockerfile');
    form.set('dockerfile', `FROM ${folder}/base/debian:1\nCOPY data.bin /data.bin\n`);
    form.append('files', new Blob([Buffer.alloc(600 * 1024)]), 'data.bin');
    const res = await fetch(`${hub.serviceUrl}api/v1/users/ada/builds`, {
      method: 'POST',
      headers: { Authorization: `token ${token}` },
      body: form,
    });
    const body = (await res.json()) as { field?: string; message?: string };
    expect(res.status).toBe(413);
    expect(body.field).toBe('files');
    expect(body.message).toMatch(/larger than 512 KiB/);
    const images = await api('GET', 'users/ada/images');
    expect((images.body as unknown as Array<{ name: string }>).map((i) => i.name)).not.toContain('too-big');
  });
});

describe('the service killed during a build', { timeout: 300_000 }, () => {
  it('leaves no build running, and queues the build again after the restart, which then finishes', async () => {
    const docker = ciDocker();
    const db = openDatabase(`sqlite://${dir}/restart.sqlite`);
    await migrateLatest(db);
    const system = testSystem({
      allowedRegistries: [`${folder}/*`],
      build: { enabled: true, pushTo: `${folder}/restart`, network: 'host', baseImages: [] },
    });
    const keyring = await createKeyring([new Uint8Array(32).fill(5)]);
    // Queued through the service's own code, then left to the service process to run.
    const { builds } = buildServices(db, { keyring, trustedRegistries: [registry], trustedGitHosts: [], systems: [system] });
    const marker = `restart-${Date.now()}`;
    const { image, build } = await builds.create(
      testUser('ada'),
      'ada',
      {
        name: 'slow',
        system: 'default',
        mode: 'dockerfile',
        dockerfile: `FROM ${folder}/base/debian:1\nRUN echo ${marker} && sleep 15\n`,
      },
      [],
    );
    await new SystemStore(db).insert(system, new Date());
    const env = {
      CUSTOM_IMAGES_DATABASE_URL: `sqlite://${dir}/restart.sqlite`,
      CUSTOM_IMAGES_CRYPT_KEY: Buffer.alloc(32, 5).toString('base64'),
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: registry,
      CUSTOM_IMAGES_RUN_CHECKS: 'false',
      CUSTOM_IMAGES_BUILD_CGROUP_PARENT: steps.parent,
      DOCKER_HOST: process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock',
    };
    const store = new BuildStore(db);
    const running = async () => (await docker.listContainers()).filter((c) => c.Command.includes(marker));
    let service = await startService(env);
    for (let i = 0; i < 300 && (await running()).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    if ((await running()).length !== 1) console.log(await store.get(build.id), service.log());
    expect(await running()).toHaveLength(1);
    await service.kill('SIGKILL');
    // The engine ends the build when its request ends with the process.
    for (let i = 0; i < 100 && (await running()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await running()).toEqual([]);
    expect((await store.get(build.id))?.status).toBe('running');

    service = await startService(env);
    try {
      // After the heartbeat goes stale, the build is queued again and run from the start.
      let row = await store.get(build.id);
      for (let i = 0; i < 900 && row?.status !== 'succeeded' && row?.status !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 200));
        row = await store.get(build.id);
      }
      if (row?.status !== 'succeeded') console.log(row?.log, service.log());
      expect(row?.status).toBe('succeeded');
      expect(row?.attempts).toBe(2);
      expect(row?.log).toMatch(/The service restarted during the last attempt; building again from the start/);
      // Pinned to what was pushed.
      expect((await db('images').where({ id: image.id }).first()).reference).toBe(`${folder}/restart/ada/slow:1@${row?.digest}`);
    } finally {
      await service.kill('SIGTERM');
      await db.destroy();
    }
  });
});
