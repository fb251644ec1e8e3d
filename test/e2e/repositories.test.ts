/**
 * A Binder-ready repository becomes a researcher's server (issue #24): a real
 * JupyterHub with DockerSpawner, a Docker engine, a registry, a git
 * smart-HTTP server and the site's pip mirror (a PEP 503 index) on loopback,
 * Chromium at the build form. The repository (requirements.txt, a start
 * script and a notebook in binder/'s layout) is built in the repository
 * mode, passes its check (the run check goes through the start script), and
 * the running server has what the files asked for: the package, start's
 * variable, the notebook in the home.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubLogin, launchBrowser, screenshot } from '../support/browser.js';
import { pidsCgroup, type PidsCgroup } from '../support/cgroup.js';
import { ciDocker, removeImagesFrom } from '../support/docker.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { serviceApi, startHub, startServer, stopServer, type TestHub, waitForCheck, waitForServer } from '../support/hub.js';
import { startPackageIndex, type PackageIndex } from '../support/packageIndex.js';
import { debianBuildBase } from '../support/buildRegistry.js';

const SYSTEM = 'binderish';
const PREFIX = 'ci-r2d';
let hub: TestHub;
/** The suite's build registry (test/support/buildRegistry.ts), and this file's folder of it, where its images are. */
let registry: string;
let folder: string;
let git: GitServer;
let index: PackageIndex;
let steps: PidsCgroup;
let browser: Browser;
let page: Page;
let dir: string;
let token: string;

beforeAll(async () => {
  ({ registry } = await debianBuildBase('e2e-repositories/base/debian', { user: 'jovyan' }));
  folder = `${registry}/e2e-repositories`;
  index = await startPackageIndex();
  index.add('ci-r2d-e2e', '3.0');
  git = await startGitServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-e2e-r2d-'));
  const systemsFile = path.join(dir, 'systems.json');
  fs.writeFileSync(
    systemsFile,
    JSON.stringify([
      {
        slug: SYSTEM,
        displayName: 'Binder-ready',
        allowedRegistries: [`${folder}/*`],
        mountPrefixes: ['/home/jovyan'],
        defaultMountPath: '/home/jovyan/work',
        spawner: 'docker',
        enabled: true,
        runCheck: true,
        buildEnabled: true,
        buildNetwork: 'host',
        buildPushTo: `${folder}/built`,
        buildBaseImages: [`Debian with JupyterHub = ${folder}/base/debian:1`],
        buildPipIndexUrl: index.url,
      },
    ]),
  );
  steps = await pidsCgroup(ciDocker(), `ci-e2e-r2d-${process.pid}`, 1024);
  hub = await startHub(19900, {
    CUSTOM_IMAGES_DEMO_SPAWNER: 'docker',
    CUSTOM_IMAGES_DEMO_CONTAINER_PREFIX: PREFIX,
    CUSTOM_IMAGES_BUILD_CGROUP_PARENT: steps.parent,
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registry,
    CUSTOM_IMAGES_TRUSTED_GIT_HOSTS: git.host,
    CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile,
    CUSTOM_IMAGES_RUN_CHECKS: 'true',
  });
  token = await hub.userToken('ada');
  browser = await launchBrowser();
  ({ page } = await hubLogin(browser, hub, 'ada'));
}, 600_000);

afterAll(async () => {
  await browser?.close();
  if (hub) await stopServer(hub, 'ada').catch(() => undefined);
  await hub?.stop();
  // What the engine pulled from this file's folder (the registry itself serves the whole run).
  if (folder) await removeImagesFrom([folder]);
  await index?.stop();
  await git?.stop();
  await steps?.remove();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const api = (method: string, route: string, body?: unknown) => serviceApi(hub, token, method, route, body);

describe('a Binder-ready repository in the hub', { timeout: 600_000 }, () => {
  let imageId: number;

  it('builds from the form in the repository mode; the build page shows the written Dockerfile, the start script and the commit', async () => {
    const commit = git.commit('lab/paper.git', {
      'binder/requirements.txt': 'ci-r2d-e2e==3.0\n',
      'binder/start': '#!/bin/sh\nexport CI_R2D_START="start ran"\nexec "$@"\n',
      'paper.ipynb': '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n',
    });
    await page.goto(`${hub.serviceUrl}builds/new`);
    await page.fill('#f-name', 'paper');
    await page.getByTestId('mode-repository').check();
    await page.fill('#f-gitUrl', `${git.origin}/lab/paper.git`);
    await screenshot(page, 'build-form-repository');
    await page.getByTestId('build').click();
    await page.waitForURL(/\/images\/\d+\/builds\/1$/);
    imageId = Number(/images\/(\d+)\/builds/.exec(page.url())?.[1]);
    await page
      .locator('[data-testid=build-status][data-status=succeeded], [data-testid=build-status][data-status=failed]')
      .waitFor({ timeout: 300_000 });
    if ((await page.getByTestId('build-status').getAttribute('data-status')) !== 'succeeded')
      console.log(await page.getByTestId('build-log').textContent());
    expect(await page.getByTestId('build-status').getAttribute('data-status')).toBe('succeeded');
    await page.reload();
    await screenshot(page, 'build-page-repository');
    await expect(page.getByTestId('build-dockerfile').textContent()).resolves.toContain('COPY ["binder/requirements.txt"');
    await expect(page.getByTestId('build-start').textContent()).resolves.toContain('binder/start runs at every server start');
    await page.goto(hub.serviceUrl);
    await expect(page.locator(`#image-${imageId} [data-testid=tile-commit]`).getAttribute('title')).resolves.toBe(commit);
  });

  it('passes its check through the start script, starts with DockerSpawner, and the server has the package, the variable and the notebook', async () => {
    const image = await api('GET', `users/ada/images/${imageId}`);
    const status = image.body.status as { checkId: number | null };
    expect(status.checkId).not.toBeNull();
    const check = await waitForCheck(hub, token, Number(status.checkId), 300_000);
    expect(check.status, JSON.stringify(check.findings)).toBe('passed');

    await startServer(hub, 'ada', { custom_images_system: SYSTEM, custom_images_image_id: imageId });
    expect(await waitForServer(hub, 'ada', 180_000)).toBe(true);
    const inServer = (script: string) =>
      execFileSync('docker', ['exec', '--user', '1000:100', `${PREFIX}-ada`, 'sh', '-c', script]).toString();
    // The notebook at the home, through the running server's own API.
    const contents = await fetch(`${hub.url}/user/ada/api/contents/paper.ipynb?content=0`, {
      headers: { Authorization: `token ${token}` },
    });
    expect(contents.status).toBe(200);
    // Only the repository's files: the service's own Dockerfile stays out of the image.
    const listing = (await (
      await fetch(`${hub.url}/user/ada/api/contents/?content=1`, { headers: { Authorization: `token ${token}` } })
    ).json()) as { content: Array<{ name: string }> };
    const names = listing.content.map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['paper.ipynb', 'binder', 'work']));
    expect(names).not.toContain('.custom-images.Dockerfile');
    expect(inServer('ls -A ~')).not.toContain('.custom-images.Dockerfile');
    // The server's process is what start exec'd: its environment has start's variable; the package imports.
    expect(inServer('tr "\\0" "\\n" < /proc/1/environ | grep CI_R2D_START')).toBe('CI_R2D_START=start ran\n');
    expect(inServer('python3 -c "import ci_r2d_e2e; print(ci_r2d_e2e.__version__)"')).toBe('3.0\n');
  });
});
