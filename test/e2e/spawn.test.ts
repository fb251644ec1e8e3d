/**
 * A real JupyterHub spawn end to end: the demo hub with our options form and
 * pre_spawn_hook (LocalProcessSpawner on the hub side): the hook sets the
 * launch parameters and the spawn goes on; a refused launch shows its message
 * on the hub's page. Then the hook module's own pytest suite, on Debian's
 * python3, against the same running service.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ciDocker, removeDataVolumes } from '../support/docker.js';
import { hubLogin, launchBrowser, saveImageInForm, screenshot, waitForVerdict } from '../support/browser.js';
import { runHookTests, startHub, stopServer, type TestHub } from '../support/hub.js';
import { passingImage, pushImage } from '../support/images.js';
import { dockerSeed, writeSystemsFile } from '../support/systems.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';

let hub: TestHub;
let registries: TestRegistries;
let browser: Browser;
let page: Page;
const good = passingImage();

beforeAll(async () => {
  registries = await startRegistries();
  await pushImage(registries.open, 'lab/good', '1', good);
  await pushImage(registries.open, 'lab/moving', '1', good);
  const systemsFile = writeSystemsFile([dockerSeed([`${registries.open}/*`])]);
  hub = await startHub(18500, { CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','), CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile });
  browser = await launchBrowser();
  ({ page } = await hubLogin(browser, hub, 'wen'));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  await registries?.stop();
  // The launches on the Docker system made data volumes in the engine.
  if (process.env.DOCKER_HOST) await removeDataVolumes(ciDocker(), 'dock');
});

async function addCheckedImage(image: string, name: string): Promise<number> {
  const id = await saveImageInForm(page, hub, { name, image });
  await page.locator(`#image-${id} [data-testid=check]`).click();
  expect(await waitForVerdict(page)).toBe('passed');
  return id;
}

describe('spawning from the hub', () => {
  it('offers the checked image in the spawn form, the hook sets the parameters, and the server starts', async () => {
    const id = await addCheckedImage(`${registries.open}/lab/good:1`, 'good env');
    await page.goto(`${hub.url}/hub/spawn`);
    // The hub's own environment first and chosen; the checked image with its system.
    await expect(page.locator('input[name=image_id]').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value))).resolves.toEqual(
      ['standard', `dock:${id}`],
    );
    await expect(page.locator('input[name=image_id][value=standard]').isChecked()).resolves.toBe(true);
    await expect(page.locator(`label:has(input[value="dock:${id}"])`).textContent()).resolves.toMatch(
      /good env .*lab\/good:1 \(Docker hosts\)/,
    );
    await page.locator(`input[name=image_id][value="dock:${id}"]`).check();
    await screenshot(page, 'spawn-form');
    await page.locator('form [type=submit]').click();
    await page.waitForURL(/\/user\/wen\//, { timeout: 60_000 });

    expect(hub.log()).toMatch(
      new RegExp(
        `custom-images: launching ${registries.open}/lab/good@sha256:[0-9a-f]{64} for wen on dock \\(mount jupyterhub-user-wen\\.dock\\.[0-9a-f]{64} at /home/jovyan/work, uid 1000, gid 100, pull docker\\)`,
      ),
    );
    const res = await fetch(`${hub.url}/hub/api/users/wen`, { headers: { Authorization: `token ${hub.adminToken}` } });
    const model = (await res.json()) as { servers: Record<string, { ready: boolean; user_options: Record<string, unknown> }> };
    expect(model.servers['']).toMatchObject({ ready: true, user_options: { custom_images_system: 'dock', custom_images_image_id: id } });
    await stopServer(hub, 'wen');
  });

  it("shows the service's refusal on the hub's page when the image changed since its check", async () => {
    await addCheckedImage(`${registries.open}/lab/moving:1`, 'moving env');
    await pushImage(registries.open, 'lab/moving', '1', { ...good, layers: [...good.layers, { files: { '/changed': 'yes' } }] });
    await page.goto(`${hub.url}/hub/spawn`);
    await page.locator('label', { hasText: 'moving env' }).locator('input').check();
    await page.locator('form [type=submit]').click();
    await page.waitForLoadState('networkidle');
    await screenshot(page, 'spawn-refused');
    await expect(page.locator('body').textContent()).resolves.toContain('now points to a different image than the one checked');
    await stopServer(hub, 'wen');
  });
});

describe('the hook module (pytest on Debian python3)', () => {
  it('passes its own tests against the running service', () => {
    const output = runHookTests(hub, {
      python: '/usr/bin/python3',
      cwd: process.cwd(),
      tests: 'jupyterhub_config/tests',
      image: `${registries.open}/lab/good:1`,
    });
    expect(output).toMatch(/\d+ passed/);
  });
});
