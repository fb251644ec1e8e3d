/**
 * Revisions through a real hub (issue #25): the JSON API with real tokens
 * (the owner, another user, the spawner hook's), the pages in headless
 * Chromium after a hub login (the tile's "changed" link to what changed,
 * accept, the revisions page, rollback, Build from this), and the spawner
 * hook's form and launch of a revision. A registry on 127.0.0.1 holds one
 * tag pushed three times with known package changes.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubLogin, launchBrowser, screenshot } from '../support/browser.js';
import { startHub, waitForCheck, type TestHub } from '../support/hub.js';
import { passingImage, pushImage, type ImageSpec, type LayerFiles } from '../support/images.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';
import { dockerSeed, writeSystemsFile } from '../support/systems.js';

let hub: TestHub;
let registries: TestRegistries;
let browser: Browser;
const tokens: Record<string, string> = {};
const digests: Record<string, string> = {};
let reference: string;
let imageId: number;
let otherId: number;

const SITE = '/usr/lib/python3/dist-packages';

/** The passing image plus a layer of pip-installed distributions. */
function withPackages(packages: Record<string, string>): ImageSpec {
  const files: LayerFiles = {};
  for (const [name, version] of Object.entries(packages)) {
    files[`${SITE}/${name}-${version}.dist-info/METADATA`] = `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`;
    files[`${SITE}/${name}-${version}.dist-info/INSTALLER`] = 'pip\n';
  }
  const base = passingImage();
  return { ...base, layers: [...base.layers, { files }] };
}

beforeAll(async () => {
  registries = await startRegistries();
  reference = `${registries.open}/lab/moving:1`;
  digests.v1 = (await pushImage(registries.open, 'lab/moving', '1', withPackages({ alpha: '1.0', beta: '2.0' }))).digest;
  const allowed = [`${registries.open}/*`];
  const systemsFile = writeSystemsFile([dockerSeed(allowed, { spawner: 'kubernetes', keptRevisions: 2, mountPrefixes: [] })]);
  hub = await startHub(19750, { CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','), CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile });
  tokens.uma = await hub.userToken('uma');
  tokens.vic = await hub.userToken('vic');
  tokens.launcher = hub.launchToken;
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  await registries?.stop();
});

async function api(who: string, method: string, p: string, body?: unknown) {
  const res = await fetch(`${hub.serviceUrl}api/v1/${p}`, {
    method,
    headers: { Authorization: `token ${tokens[who]}`, 'Content-Type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').includes('json') && text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  return { status: res.status, body: json ?? ({} as Record<string, unknown>), text, type: res.headers.get('content-type') ?? '' };
}

/** Checks `id` of `who` now, to its end. */
async function check(who: string, id: number): Promise<Record<string, unknown>> {
  const job = await api(who, 'POST', `users/${who}/images/${id}/check`);
  return waitForCheck(hub, tokens[who] ?? '', job.body.id as number);
}

/** Follows the image's candidate check (a moved tag's new content) until it has been read. */
async function candidateRead(id: number): Promise<Record<string, unknown>> {
  for (let i = 0; i < 300; i++) {
    const changes = await api('uma', 'GET', `users/uma/images/${id}/changes`);
    const candidate = changes.body.candidate as { status: string } | null;
    if (candidate && candidate.status !== 'queued' && candidate.status !== 'running') return changes.body;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the new content was not read');
}

async function ownPage(): Promise<Page> {
  return (await hubLogin(browser, hub, 'uma')).page;
}

describe('revisions through the hub', { timeout: 120_000 }, () => {
  it('the first check is revision 1; the system says how many are kept', async () => {
    imageId = (await api('uma', 'POST', 'users/uma/images', { system: 'dock', image: reference, name: 'moving' })).body.id as number;
    expect((await check('uma', imageId)).status).toBe('passed');
    const list = await api('uma', 'GET', `users/uma/images/${imageId}/revisions`);
    expect(list.body).toMatchObject({ keep: 2, running: 1, pending: null, dropped: 0 });
    expect((list.body.revisions as Array<Record<string, unknown>>).map((r) => [r.number, r.reason, r.status])).toEqual([
      [1, 'first', 'passed'],
    ]);
    const systems = (await api('uma', 'GET', 'systems')).body as unknown as Array<Record<string, unknown>>;
    expect(systems.find((s) => s.slug === 'dock')?.keptRevisions).toBe(2);
  });

  it('a moved tag: Start is refused, the tile says "changed" and its link shows what changed; accept adopts it', async () => {
    digests.v2 = (await pushImage(registries.open, 'lab/moving', '1', withPackages({ alpha: '1.1', delta: '0.1' }))).digest;
    const refused = await api('launcher', 'GET', `users/uma/images/${imageId}/launch`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toMatch(/now points to a different image than the one checked/);
    const changes = await candidateRead(imageId);
    expect(changes).toMatchObject({ running: 1, pending: 2, problem: null });
    const diff = changes.diff as {
      pythonPackages: { added: Array<{ name: string }>; removed: Array<{ name: string }>; changed: unknown[] };
    };
    expect(diff.pythonPackages.added.map((p) => p.name)).toEqual(['delta']);
    expect(diff.pythonPackages.removed.map((p) => p.name)).toEqual(['beta']);
    expect(diff.pythonPackages.changed).toEqual([{ name: 'alpha', from: '1.0', to: '1.1' }]);

    const page = await ownPage();
    const status = page.locator(`#image-${imageId} [data-testid=status]`);
    await expect(status.textContent()).resolves.toContain('Its tag moved: see what changed');
    await status.click();
    await page.getByTestId('pending-revision').waitFor();
    const rows = await page
      .getByTestId('diff-row')
      .evaluateAll((els) => els.map((e) => `${e.getAttribute('data-change')} ${e.getAttribute('data-name')}`));
    expect(rows).toEqual(['changed alpha', 'removed beta', 'added delta']);
    await screenshot(page, 'revisions-changes');
    await page.getByTestId('accept').click();
    await page.getByTestId('revisions').waitFor();
    await expect(page.getByTestId('running-revision').textContent()).resolves.toBe('revision 2');
    await page.context().close();

    const launched = await api('launcher', 'GET', `users/uma/images/${imageId}/launch`);
    expect(launched.status).toBe(200);
    expect(launched.body.digest).toBe(digests.v2);
  });

  it('rollback on the revisions page: the tile says which revision runs, and the launch answers its digest', async () => {
    const page = await ownPage();
    await page.goto(`${hub.serviceUrl}images/${imageId}/revisions`);
    await screenshot(page, 'revisions-list');
    await page.locator('[data-testid=revision][data-number="1"] [data-testid=rollback]').click();
    await page.getByTestId('notice').filter({ hasText: 'Rolled back to revision 1' }).waitFor();
    // The rollback's check reuses the result of the same content; the page shows the image when it is done.
    for (let i = 0; i < 100; i++) {
      await page.goto(hub.serviceUrl);
      if ((await page.locator(`#image-${imageId} [data-testid=tile-revision]`).textContent())?.includes('Runs revision 1')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await expect(page.locator(`#image-${imageId} [data-testid=tile-revision]`).textContent()).resolves.toContain(
      'Runs revision 1 (rolled back; newest: 2)',
    );
    await screenshot(page, 'revisions-tile');
    await page.context().close();

    const launched = await api('launcher', 'GET', `users/uma/images/${imageId}/launch`);
    expect(launched.body).toMatchObject({ digest: digests.v1, image: `${registries.open}/lab/moving@${digests.v1}` });
    const second = await api('launcher', 'GET', `users/uma/images/${imageId}/launch?revision=2`);
    expect(second.body).toMatchObject({ digest: digests.v2 });
    expect((await api('launcher', 'GET', `users/uma/images/${imageId}/launch?revision=x`)).body).toMatchObject({
      status: 400,
      field: 'revision',
    });
  });

  it("the spawner hook's form offers the other kept revision, and starts it by digest", () => {
    const script = `
import asyncio, json, sys
from types import SimpleNamespace
import logging
sys.path.insert(0, ${JSON.stringify(path.resolve('jupyterhub_config'))})
import custom_images_hook as hook
api = hook.CustomImages(${JSON.stringify(`${hub.serviceUrl}api/v1/`)}, ${JSON.stringify(hub.launchToken)}, "/services/custom-images/")
spawner = SimpleNamespace(user=SimpleNamespace(name="uma"), user_options={}, log=logging.getLogger("t"), environment={}, image=None)
html = asyncio.run(api.options_form(spawner))
spawner.user_options = api.options_from_form({"image_id": ["dock:${imageId}@2"]})
params = asyncio.run(api.launch_parameters(spawner))
print(json.dumps({"html": html, "digest": params["digest"], "revision": params["env"].get("CUSTOM_IMAGES_REVISION")}))
`;
    const run = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { html: string; digest: string; revision: string };
    expect(out.html).toContain(`value="dock:${imageId}"`);
    expect(out.html).toContain(`value="dock:${imageId}@2"`);
    // The revision it runs is the image itself, not offered twice.
    expect(out.html).not.toContain(`value="dock:${imageId}@1"`);
    expect(out).toMatchObject({ digest: digests.v2, revision: '2' });
  });

  it('a third revision: the oldest kept one leaves the list and is refused at launch in words', async () => {
    await api('uma', 'POST', `users/uma/images/${imageId}/revisions/2/rollback`);
    for (let i = 0; i < 100 && (await api('uma', 'GET', `users/uma/images/${imageId}/revisions`)).body.running !== 2; i++) {
      await new Promise((r) => setTimeout(r, 200));
    }
    digests.v3 = (await pushImage(registries.open, 'lab/moving', '1', withPackages({ alpha: '1.2', delta: '0.1' }))).digest;
    expect((await api('uma', 'POST', `users/uma/images/${imageId}/changes/look`)).status).toBe(202);
    const changes = await candidateRead(imageId);
    expect(changes.pending).toBe(3);
    expect((await api('uma', 'POST', `users/uma/images/${imageId}/changes/accept`, { revision: 3 })).status).toBe(200);
    const list = await api('uma', 'GET', `users/uma/images/${imageId}/revisions`);
    expect((list.body.revisions as Array<{ number: number }>).map((r) => r.number)).toEqual([3, 2]);
    expect(list.body.dropped).toBe(1);
    const refused = await api('launcher', 'GET', `users/uma/images/${imageId}/launch?revision=1`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toBe(
      'Revision 1 of "moving" is no longer kept: Docker hosts keeps the 2 newest revisions of an image. Start a newer revision, or the image itself.',
    );
  });

  it('exports: pinned requirements, environment.yml and the record, as downloads', async () => {
    const requirements = await api('uma', 'GET', `users/uma/images/${imageId}/revisions/3/requirements.txt`);
    expect(requirements.status).toBe(200);
    expect(requirements.type).toMatch(/^text\/plain/);
    expect(requirements.text.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual(['alpha==1.2', 'delta==0.1']);
    const environment = await api('uma', 'GET', `users/uma/images/${imageId}/revisions/3/environment.yml`);
    expect(environment.text).toContain('- pip:\n      - alpha==1.2\n      - delta==0.1');
    const record = await api('uma', 'GET', `users/uma/images/${imageId}/revisions/3/record.json`);
    expect(record.body).toMatchObject({ registry: registries.open, manifestDigest: digests.v3, reference });
    expect((await api('vic', 'GET', `users/uma/images/${imageId}/revisions/3/record.json`)).status).toBe(404);
  });

  it('a diff between images the user may not read is 404, in the words of any image that is not theirs', async () => {
    otherId = (await api('vic', 'POST', 'users/vic/images', { system: 'dock', image: reference, name: 'vics' })).body.id as number;
    await check('vic', otherId);
    const unknown = await api('vic', 'GET', `users/vic/diff?from=${otherId}&to=999999`);
    expect(unknown.status).toBe(404);
    for (const query of [`from=${otherId}&to=${imageId}`, `from=${imageId}&to=${otherId}`, `from=${otherId}&to=${imageId}&toRevision=3`]) {
      const res = await api('vic', 'GET', `users/vic/diff?${query}`);
      expect(res.status).toBe(404);
      expect(res.body.message).toBe(unknown.body.message);
    }
    expect((await api('vic', 'GET', `users/uma/diff?from=${imageId}&to=${imageId}`)).status).toBe(404);
    expect((await api('vic', 'GET', `users/vic/diff?from=${otherId}`)).body).toMatchObject({ status: 400, field: 'to' });
    // Their own two: answered.
    const own = await api('uma', 'GET', `users/uma/diff?from=${imageId}&fromRevision=2&to=${imageId}&toRevision=3`);
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ same: false, pythonPackages: { changed: [{ name: 'alpha', from: '1.1', to: '1.2' }] } });
  });

  it('Build from this opens the build form with the pins of the revision', async () => {
    const page = await ownPage();
    await page.goto(`${hub.serviceUrl}images/${imageId}/revisions`);
    await page.locator('[data-testid=revision][data-number="3"] [data-testid=build-from]').click();
    // No system here builds: the form still shows the pins and says where they came from.
    await expect(page.getByTestId('build-from-notice').textContent()).resolves.toContain('Filled in from revision 3 of "moving"');
    await expect(page.locator('#f-pip').inputValue()).resolves.toContain('alpha==1.2\ndelta==0.1');
    await page.context().close();
  });
});
