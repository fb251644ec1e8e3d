/**
 * Issue #27 on a real JupyterHub, Docker engine and registry: an image's
 * description, entered in the form, shown as text on its tile, in the API
 * and in the hub's spawn form (its own owner's and a receiver's of a shared
 * image); and an image's history after create, edit, build, check and share,
 * from the API and its page, with who and when, newest first; another user
 * gets 404, the spawner hook's token may read it.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubLogin, launchBrowser, saveImageInForm, screenshot, waitForVerdict } from '../support/browser.js';
import { pidsCgroup, type PidsCgroup } from '../support/cgroup.js';
import { ciDocker, removeImagesFrom } from '../support/docker.js';
import { hubApi, startHub, waitForCheck, type TestHub } from '../support/hub.js';
import { dockerSeed, writeSystemsFile } from '../support/systems.js';
import { debianBuildBase } from '../support/buildRegistry.js';

const SYSTEM = 'builder';
/** Markup that would run if any page put it in unescaped. */
const DESCRIPTION = `<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> Course env & "notes"`;
let hub: TestHub;
/** The suite's build registry (test/support/buildRegistry.ts), and this file's folder of it, where its images are. */
let registry: string;
let folder: string;
let browser: Browser;
let page: Page;
let steps: PidsCgroup;
const tokens: Record<string, string> = {};

type Json = Record<string, unknown>;

async function api(who: string, method: string, route: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${hub.serviceUrl}api/v1/${route}`, {
    method,
    headers: { Authorization: `token ${tokens[who]}`, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Json };
}

/** Polls `route` of ada's until `done` says so. */
async function until(route: string, done: (body: Json) => boolean): Promise<Json> {
  for (let i = 0; i < 1500; i++) {
    const { body } = await api('ada', 'GET', route);
    if (done(body)) return body;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${route} did not get there`);
}

/** Runs `step`, returning the times just before and after it: the window its history entry's time must be in. */
async function timed<T>(step: () => Promise<T>): Promise<{ result: T; from: number; to: number }> {
  // The audit's time is stored with millisecond precision (or less on SQLite): widen by one.
  const from = Date.now() - 1;
  const result = await step();
  return { result, from, to: Date.now() + 1 };
}

beforeAll(async () => {
  ({ registry } = await debianBuildBase('e2e-history/base/debian'));
  folder = `${registry}/e2e-history`;
  steps = await pidsCgroup(ciDocker(), `ci-e2e-history-${process.pid}`, 1024);
  hub = await startHub(19650, {
    CUSTOM_IMAGES_BUILD_CGROUP_PARENT: steps.parent,
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registry,
    CUSTOM_IMAGES_SYSTEMS_FILE: writeSystemsFile([
      dockerSeed([`${folder}/*`], {
        slug: SYSTEM,
        displayName: 'Builds here',
        buildEnabled: true,
        // The default bridge cannot be created on these machines: build steps use the host's network.
        buildNetwork: 'host',
        buildPushTo: `${folder}/built`,
      }),
    ]),
  });
  for (const name of ['ada', 'bob']) tokens[name] = await hub.userToken(name);
  tokens.launcher = hub.launchToken;
  expect((await hubApi(hub, 'POST', '/groups/lab')).status).toBe(201);
  expect((await hubApi(hub, 'POST', '/groups/lab/users', { users: ['bob'] })).status).toBe(200);
  browser = await launchBrowser();
  ({ page } = await hubLogin(browser, hub, 'ada'));
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  // What the engine pulled from this file's folder (the registry itself serves the whole run).
  if (folder) await removeImagesFrom([folder]);
  await steps?.remove();
});

describe("an image's description", { timeout: 300_000 }, () => {
  it('entered in the form, is text on the tile, in the API and in the spawn forms of its owner and of those it is shared with', async () => {
    const id = await saveImageInForm(page, hub, {
      name: 'course env',
      description: DESCRIPTION,
      image: `${folder}/base/debian:1`,
    });
    const tile = page.locator(`#image-${id} [data-testid=tile-description]`);
    await expect(tile.textContent()).resolves.toBe(DESCRIPTION);
    await expect(tile.innerHTML()).resolves.toContain('&lt;script&gt;');
    await screenshot(page, 'history-description-tile');
    expect((await api('ada', 'GET', `users/ada/images/${id}`)).body.description).toBe(DESCRIPTION);

    // Checked, it is offered in the hub's spawn form, with its description as text.
    await page.locator(`#image-${id} [data-testid=check]`).click();
    expect(await waitForVerdict(page)).toBe('passed');
    await page.goto(`${hub.url}/hub/spawn`);
    const choice = page.locator(`label:has(input[value="${SYSTEM}:${id}"])`);
    await expect(choice.locator('.custom-images-description').textContent()).resolves.toBe(DESCRIPTION);
    await expect(page.locator('.custom-images-form script, .custom-images-form img').count()).resolves.toBe(0);
    await screenshot(page, 'history-description-spawn-form');
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();

    // Shared, a receiver sees the owner's description, in the API and in their spawn form.
    expect((await api('ada', 'PUT', `users/ada/images/${id}/shares`, { groups: ['lab'] })).status).toBe(200);
    const shared = await fetch(`${hub.serviceUrl}api/v1/users/bob/shared`, { headers: { Authorization: `token ${tokens.bob}` } });
    expect(((await shared.json()) as Json[]).find((i) => i.id === id)).toMatchObject({ ownerDescription: DESCRIPTION, access: 'shared' });
    const bob = await hubLogin(browser, hub, 'bob');
    await bob.page.goto(`${hub.url}/hub/spawn`);
    await expect(bob.page.locator(`label:has(input[value="${SYSTEM}:${id}"]) .custom-images-description`).textContent()).resolves.toBe(
      DESCRIPTION,
    );
    expect(await bob.page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    await bob.context.close();
  });
});

describe("an image's history", { timeout: 600_000 }, () => {
  it('lists create, build, edit, check and share with who and when, newest first; another user gets 404', async () => {
    const created = await timed(() =>
      api('ada', 'POST', 'users/ada/builds', {
        name: 'history-env',
        system: SYSTEM,
        mode: 'dockerfile',
        dockerfile: `FROM ${folder}/base/debian:1\n`,
      }),
    );
    expect(created.result.status).toBe(202);
    const id = (created.result.body.image as { id: number }).id;
    const build = await until(`users/ada/images/${id}/builds/1`, (b) => b.status !== 'queued' && b.status !== 'running');
    expect(build.status).toBe('succeeded');
    // The service checks what it built, on its own.
    const built = await until(`users/ada/images/${id}`, (i) => !['building', 'checking'].includes((i.status as Json).code as string));
    expect((built.status as Json).code).toBe('passed');

    const edited = await timed(() =>
      api('ada', 'PUT', `users/ada/images/${id}`, {
        name: 'history-env',
        system: SYSTEM,
        image: built.imageInput,
        description: 'Now described',
      }),
    );
    expect(edited.result.status).toBe(200);
    const checked = await timed(() => api('ada', 'POST', `users/ada/images/${id}/check`));
    expect(checked.result.status).toBe(202);
    expect((await waitForCheck(hub, tokens.ada!, Number(checked.result.body.id))).status).toBe('passed');
    const shared = await timed(() => api('ada', 'PUT', `users/ada/images/${id}/shares`, { groups: ['lab'] }));
    expect(shared.result.status).toBe(200);

    const history = await api('ada', 'GET', `users/ada/images/${id}/history`);
    expect(history.status).toBe(200);
    const entries = history.body.entries as Json[];
    expect(entries.map((e) => [e.event, e.by, e.byKind])).toEqual([
      ['shared', 'ada', 'user'],
      ['checked', 'ada', 'user'],
      ['modified', 'ada', 'user'],
      ['checked', 'custom-images', 'service'],
      ['built', 'ada', 'user'],
      ['created', 'ada', 'user'],
    ]);
    expect(entries[0]).toMatchObject({ groups: ['lab'] });
    expect(entries[1]).toMatchObject({ check: Number(checked.result.body.id) });
    expect(entries[2]).toMatchObject({ changed: ['description'] });
    expect(entries[4]).toMatchObject({ build: 1 });
    const at = (i: number) => Date.parse(entries[i]!.at as string);
    const within = (i: number, step: { from: number; to: number }) => {
      expect(at(i)).toBeGreaterThanOrEqual(step.from);
      expect(at(i)).toBeLessThanOrEqual(step.to);
    };
    within(0, shared);
    within(1, checked);
    within(2, edited);
    within(4, created);
    within(5, created);
    // The service's check came after the build was queued and before the edit.
    expect(at(3)).toBeGreaterThanOrEqual(created.from);
    expect(at(3)).toBeLessThanOrEqual(edited.from);

    // The page says the same, linked from the tile.
    await page.goto(hub.serviceUrl);
    await page.locator(`#image-${id} [data-testid=history-link]`).click();
    await page.getByTestId('history').waitFor();
    await expect(
      page.locator('[data-testid=history-entry]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-event'))),
    ).resolves.toEqual(['shared', 'checked', 'modified', 'checked', 'built', 'created']);
    await expect(page.locator('[data-testid=history-entry][data-event=modified] [data-testid=history-facts]').textContent()).resolves.toBe(
      'changed: description',
    );
    await screenshot(page, 'history-page');

    // Another user: 404, under their name and under ada's, in the API and on the page; the spawner hook's token may read it.
    expect((await api('bob', 'GET', `users/ada/images/${id}/history`)).status).toBe(404);
    expect((await api('bob', 'GET', `users/bob/images/${id}/history`)).status).toBe(404);
    const bob = await hubLogin(browser, hub, 'bob');
    const bobsPage = await bob.page.goto(`${hub.serviceUrl}images/${id}/history`);
    expect(bobsPage?.status()).toBe(404);
    await bob.context.close();
    const launcher = await api('launcher', 'GET', `users/ada/images/${id}/history`);
    expect(launcher).toEqual(history);
  });
});
