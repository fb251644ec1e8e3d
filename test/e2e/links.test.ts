/**
 * Launch links end to end (issue #24, points 2 and 3): a real JupyterHub
 * with DockerSpawner (host networking), a Docker engine that builds, a
 * registry, the git smart-HTTP server, Chromium. A logged-out visitor
 * follows a link, logs in at the hub, sees the plan, clicks once, sees the
 * build's log stream and lands in the notebook at `urlpath`; a second visit
 * of the same commit starts without a build (and asks to stop the running
 * server first). A private repository, a host the system does not allow:
 * refused in words, nothing built, nothing asked of the host.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, screenshot } from '../support/browser.js';
import { pidsCgroup, type PidsCgroup } from '../support/cgroup.js';
import { ciDocker, removeDataVolumes, removeImagesFrom } from '../support/docker.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { serviceApi, startHub, stopServer, type TestHub } from '../support/hub.js';
import { debianBuildBase } from '../support/buildRegistry.js';

const PREFIX = 'ci-links';
const SYSTEM = 'linked';

let hub: TestHub;
/** The suite's build registry (test/support/buildRegistry.ts), and this file's folder of it, where its images are. */
let registry: string;
let folder: string;
let git: GitServer;
let steps: PidsCgroup;
let docker: Docker;
let browser: Browser;
let dir: string;
let token: string;
/** A listener on loopback no link may reach: a host not allowed for the system. */
let elsewhere: { host: string; connections: number; close(): Promise<void> };
let commit: string;

beforeAll(async () => {
  docker = ciDocker();
  ({ registry } = await debianBuildBase('e2e-links/base/debian'));
  folder = `${registry}/e2e-links`;
  await debianBuildBase('e2e-links/hub/standard', { user: 'jovyan' });
  git = await startGitServer();
  // The paper: a notebook and nothing else, Binder-ready: built by repo2docker's rules, it lands in the home,
  // where the server opens (the data volume is a folder in it, and starts empty: nothing of a stranger's there).
  const notebook = JSON.stringify({
    cells: [{ cell_type: 'markdown', metadata: {}, source: ['# The paper of the links test'] }],
    metadata: {},
    nbformat: 4,
    nbformat_minor: 5,
  });
  commit = git.commit('lab/paper', { 'paper.ipynb': notebook });
  git.commit('private/paper', { Dockerfile: `FROM ${folder}/base/debian:1\n` });
  let connections = 0;
  const listener = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  elsewhere = {
    host: `127.0.0.1:${(listener.address() as net.AddressInfo).port}`,
    get connections() {
      return connections;
    },
    close: () => new Promise((resolve) => listener.close(() => resolve())),
  };

  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-e2e-links-'));
  const systemsFile = path.join(dir, 'systems.json');
  fs.writeFileSync(
    systemsFile,
    JSON.stringify([
      {
        slug: SYSTEM,
        displayName: 'Linked hosts',
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
        // Repositories come from the test's git server only: the other loopback host is trusted, not allowed.
        buildGitHosts: git.host,
      },
    ]),
  );
  steps = await pidsCgroup(docker, `ci-e2e-links-${process.pid}`, 1024);
  hub = await startHub(19950, {
    CUSTOM_IMAGES_DEMO_SPAWNER: 'docker',
    CUSTOM_IMAGES_DEMO_IMAGE: `${folder}/hub/standard:1`,
    CUSTOM_IMAGES_DEMO_CONTAINER_PREFIX: PREFIX,
    CUSTOM_IMAGES_BUILD_CGROUP_PARENT: steps.parent,
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registry,
    CUSTOM_IMAGES_TRUSTED_GIT_HOSTS: [git.host, elsewhere.host].join(','),
    CUSTOM_IMAGES_LINK_HOSTS: `gh=https://github.com,lab=${git.origin}`,
    CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile,
    CUSTOM_IMAGES_RUN_CHECKS: 'true',
  });
  token = await hub.userToken('ada');
  browser = await launchBrowser();
}, 600_000);

afterAll(async () => {
  await browser?.close();
  if (hub) await stopServer(hub, 'ada').catch(() => undefined);
  await hub?.stop();
  // What the engine pulled from this file's folder (the registry itself serves the whole run).
  if (folder) await removeImagesFrom([folder]);
  await git?.stop();
  await elsewhere?.close();
  await steps?.remove();
  if (docker) await removeDataVolumes(docker, SYSTEM);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const api = (method: string, route: string, body?: unknown) => serviceApi(hub, token, method, route, body);

/** ada's builds of every image, by image id. */
async function buildsOfAda(): Promise<number> {
  const images = (await api('GET', 'users/ada/images')).body as unknown as { images?: Array<{ id: number }> } | Array<{ id: number }>;
  const list = Array.isArray(images) ? images : (images.images ?? []);
  let count = 0;
  for (const image of list) {
    const builds = (await api('GET', `users/ada/images/${image.id}/builds`)).body as unknown as { builds?: unknown[] } | unknown[];
    count += Array.isArray(builds) ? builds.length : (builds.builds ?? []).length;
  }
  return count;
}

const linkUrl = () =>
  `${hub.serviceUrl}open?${new URLSearchParams({ repo: `${git.origin}/lab/paper`, ref: 'main', urlpath: 'notebooks/paper.ipynb' })}`;

describe('a launch link', { timeout: 900_000 }, () => {
  let page: Page;

  it('takes a logged-out visitor through the hub login to the plan, builds on one click with the log streaming, and lands in the notebook', async () => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    page = await context.newPage();
    await page.goto(linkUrl());
    // The hub's login form: the visitor was sent there by the service.
    expect(new URL(page.url()).pathname).toMatch(/\/hub\/login/);
    await page.fill('input[name=username]', 'ada');
    await page.fill('input[name=password]', 'any-password');
    await Promise.all([page.waitForURL(`${hub.serviceUrl}open?**`), page.click('[type=submit]')]);
    // Back on the link, query and all: the plan, nothing started.
    await expect(page.getByTestId('plan-repo').textContent()).resolves.toBe(`${git.origin}/lab/paper`);
    await expect(page.getByTestId('plan-commit').getAttribute('title')).resolves.toBe(commit);
    await expect(page.getByTestId('plan-action').getAttribute('data-action')).resolves.toBe('build');
    await expect(page.getByTestId('plan-action').textContent()).resolves.toMatch(/Will build/);
    await screenshot(page, 'link-plan');
    expect(await buildsOfAda()).toBe(0);
    expect((await docker.listContainers({ all: true, filters: { name: [`^/${PREFIX}-ada$`] } })).length).toBe(0);

    await page.getByTestId('plan-open').click();
    await page.waitForURL(`${hub.serviceUrl}opening`);
    // The build's log arrives while it runs (the build page's stream).
    await page.locator('[data-testid=build-log]', { hasText: 'COPY' }).waitFor({ timeout: 300_000 });
    await screenshot(page, 'link-building');
    await page.waitForURL(`${hub.url}/user/ada/notebooks/paper.ipynb`, { timeout: 600_000 });
    await page.waitForLoadState('load');
    await screenshot(page, 'link-landed');
    // The notebook server's own page for the file, in the built image.
    const answer = await page.request.get(`${hub.url}/user/ada/api/contents/paper.ipynb`);
    expect(answer.status()).toBe(200);
    expect(JSON.stringify(await answer.json())).toContain('The paper of the links test');
    expect(await page.title()).toMatch(/paper/);
    expect(await buildsOfAda()).toBe(1);
    const state = await api('GET', 'open/state');
    expect(state.body).toMatchObject({ step: 'ready', commit, build: 1 });
  });

  it('starts the same commit again without a build, after asking to stop the running server', async () => {
    const link = { repo: `${git.origin}/lab/paper`, ref: 'main', urlpath: 'notebooks/paper.ipynb' };
    const plan = await api('GET', `open?${new URLSearchParams(link)}`);
    expect(plan.body).toMatchObject({ action: 'start', commit, server: 'ready', image: { build: 1, building: false } });
    // A script must say so too: a running server is not stopped unasked.
    const unasked = await api('POST', 'open', link);
    expect(unasked.status).toBe(409);
    expect(unasked.body.message).toMatch(/Your server is running/);
    await page.goto(linkUrl());
    await expect(page.getByTestId('plan-action').getAttribute('data-action')).resolves.toBe('start');
    await expect(page.getByTestId('plan-running').textContent()).resolves.toMatch(/Your server is running/);
    // The button needs the answer: without it the browser does not send the form.
    await page.getByTestId('plan-open').click();
    expect(page.url()).toBe(linkUrl());
    await page.getByTestId('plan-stop').check();
    const before = (await docker.getContainer(`${PREFIX}-ada`).inspect()).Id;
    await page.getByTestId('plan-open').click();
    await page.waitForURL(`${hub.url}/user/ada/notebooks/paper.ipynb`, { timeout: 300_000 });
    expect((await docker.getContainer(`${PREFIX}-ada`).inspect()).Id).not.toBe(before);
    expect(await buildsOfAda()).toBe(1);
    expect((await api('GET', 'open/state')).body).toMatchObject({ step: 'ready', build: null });
  });

  it('refuses a private repository in words, builds nothing and starts nothing', async () => {
    await stopServer(hub, 'ada');
    const seen = git.requests.length;
    const plan = await api('GET', `open?${new URLSearchParams({ repo: `${git.origin}/private/paper` })}`);
    expect(plan.status).toBe(403);
    expect(plan.body.message).toMatch(/needs an access token: the repository is private/);
    const open = await api('POST', 'open', { repo: `${git.origin}/private/paper` });
    expect(open.status).toBe(403);
    // Only the refs were asked for, never a pack.
    expect(git.requests.slice(seen).filter((r) => r.method === 'POST')).toEqual([]);
    await page.goto(`${hub.serviceUrl}open/lab/private/paper`);
    await expect(page.locator('body').textContent()).resolves.toMatch(/the repository is private/);
    await screenshot(page, 'link-private');
    expect(await buildsOfAda()).toBe(1);
    expect((await api('GET', 'open/state')).body).toMatchObject({ step: 'ready', build: null });
    expect((await docker.listContainers({ all: true, filters: { name: [`^/${PREFIX}-ada$`] } })).length).toBe(0);
  });

  it("shows the link and its badge on the image's build page", async () => {
    const { image } = (await api('GET', 'open/state')).body as { image: { id: number } };
    await page.goto(`${hub.serviceUrl}images/${image.id}/builds/1`);
    const url = await page.getByTestId('share-url').textContent();
    expect(url).toBe(`${hub.serviceUrl}open?${new URLSearchParams({ repo: `${git.origin}/lab/paper`, ref: commit, system: SYSTEM })}`);
    await expect(page.getByTestId('share-markdown').textContent()).resolves.toBe(
      `[![Open in the hub](${hub.serviceUrl}badge.svg)](${url})`,
    );
    await expect(page.getByTestId('share-html').textContent()).resolves.toContain(`<a href="${url?.replace(/&/g, '&amp;')}">`);
    const badge = await fetch(`${hub.serviceUrl}badge.svg`);
    expect(badge.status).toBe(200);
    expect(badge.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    expect(await badge.text()).toContain('open in the hub');
  });

  it('acts on no POST without the plan page’s CSRF token (a page elsewhere cannot open a link for the visitor)', async () => {
    const seen = git.requests.length;
    const forged = await page.request.post(`${hub.serviceUrl}open`, {
      form: { repo: `${git.origin}/lab/paper`, ref: commit, system: SYSTEM, stopRunning: 'on' },
      maxRedirects: 0,
    });
    expect(forged.status()).toBe(403);
    expect(git.requests.length).toBe(seen);
    expect((await docker.listContainers({ all: true, filters: { name: [`^/${PREFIX}-ada$`] } })).length).toBe(0);
  });

  it('refuses a ref the repository does not have and a urlpath out of the server, in words', async () => {
    const noRef = await api('GET', `open?${new URLSearchParams({ repo: `${git.origin}/lab/paper`, ref: 'no-such-branch' })}`);
    expect(noRef.status).toBe(400);
    expect(noRef.body).toMatchObject({ field: 'ref' });
    expect(noRef.body.message).toMatch(/no branch or tag "no-such-branch"/);
    await page.goto(`${hub.serviceUrl}open?${new URLSearchParams({ repo: `${git.origin}/lab/paper`, urlpath: '../../hub/admin' })}`);
    await expect(page.locator('body').textContent()).resolves.toMatch(/urlpath is a path inside your server/);
    expect(await buildsOfAda()).toBe(1);
  });

  it('refuses a host the system does not allow before asking it anything', async () => {
    const plan = await api('GET', `open?${new URLSearchParams({ repo: `http://${elsewhere.host}/lab/paper` })}`);
    expect(plan.status).toBe(400);
    expect(plan.body.message).toMatch(new RegExp(`Repositories on ${elsewhere.host} are not allowed on Linked hosts`));
    const open = await api('POST', 'open', { repo: `http://${elsewhere.host}/lab/paper` });
    expect(open.status).toBe(400);
    expect(elsewhere.connections).toBe(0);
    expect(await buildsOfAda()).toBe(1);
  });
});
