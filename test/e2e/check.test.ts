/**
 * "Check now" from the form's tiles and from the API, through a real hub,
 * against real registries: the verdict in words, the tile's status, results
 * reused for the same digest and policy.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubLogin, launchBrowser, saveImageInForm, screenshot, waitForVerdict } from '../support/browser.js';
import { startHub, waitForCheck, type TestHub } from '../support/hub.js';
import { passingImage, pushImage, pythonWithJupyterhub } from '../support/images.js';
import { PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';

let hub: TestHub;
let registries: TestRegistries;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  registries = await startRegistries();
  const good = passingImage();
  await pushImage(registries.open, 'lab/good', '1.0', good);
  await pushImage(registries.open, 'lab/private', '1.0', good);
  await pushImage(registries.open, 'lab/broken', '1.0', { layers: [{ files: pythonWithJupyterhub() }] });
  hub = await startHub(18300, { CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(',') });
  browser = await launchBrowser();
  ({ page } = await hubLogin(browser, hub, 'hana'));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  await registries?.stop();
});

function createImage(fields: Record<string, string>): Promise<number> {
  return saveImageInForm(page, hub, fields);
}

async function checkNow(id: number): Promise<string> {
  await page.goto(hub.serviceUrl);
  await page.locator(`#image-${id} [data-testid=check]`).click();
  return waitForVerdict(page);
}

describe('Check now', () => {
  it('passes a good image, says so in words, and the tile turns green', async () => {
    const id = await createImage({ image: `${registries.open}/lab/good:1.0` });
    expect(await checkNow(id)).toBe('passed');
    await expect(page.getByTestId('verdict').textContent()).resolves.toContain('This image can run jupyterhub-singleuser');
    await expect(page.getByTestId('log').textContent()).resolves.toMatch(/Digest sha256:[0-9a-f]{64}/);
    await screenshot(page, 'check-passed');
    await page.goto(hub.serviceUrl);
    await expect(page.locator(`#image-${id} [data-testid=status]`).textContent()).resolves.toContain('Checked OK');
  });

  it('fails an image without singleuser, with the reason shown', async () => {
    const id = await createImage({ image: `${registries.open}/lab/broken:1.0` });
    expect(await checkNow(id)).toBe('failed');
    await expect(page.locator('[data-code="singleuser.missing"]').textContent()).resolves.toContain("not on the image's PATH");
    await screenshot(page, 'check-failed');
    await page.goto(hub.serviceUrl);
    await expect(page.locator(`#image-${id} [data-testid=status]`).getAttribute('class')).resolves.toContain('badge-failed');
  });

  it('uses the stored credentials for a private registry, and says when they are wrong', async () => {
    const id = await createImage({
      image: `${registries.basic}/lab/private:1.0`,
      registry: registries.basic,
      username: USER,
      password: 'wrong-password',
    });
    expect(await checkNow(id)).toBe('error');
    await expect(page.locator('[data-code="registry.unauthorized"]').textContent()).resolves.toContain('refused the username and password');
    await page.goto(`${hub.serviceUrl}images/${id}/edit`);
    await page.fill('#f-password', PASSWORD);
    await page.getByTestId('save').click();
    expect(await checkNow(id)).toBe('passed');
  });

  it('shows "changed since last check" after the image is edited', async () => {
    const id = await createImage({ image: `${registries.open}/lab/good:1.0`, name: 'to change' });
    await checkNow(id);
    await page.goto(`${hub.serviceUrl}images/${id}/edit`);
    await page.fill('#f-image', `${registries.open}/lab/broken:1.0`);
    await page.getByTestId('save').click();
    await expect(page.locator(`#image-${id} [data-testid=status]`).textContent()).resolves.toContain('Changed since last check');
  });
});

describe('the check API', () => {
  it('reuses the stored result for the same digest and policy', async () => {
    const token = await hub.userToken('hana');
    const headers = { Authorization: `token ${token}`, 'Content-Type': 'application/json' };
    const created = await fetch(`${hub.serviceUrl}api/v1/users/hana/images`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ system: 'default', image: `${registries.open}/lab/good:1.0` }),
    });
    const image = (await created.json()) as { id: number };
    const first = await fetch(`${hub.serviceUrl}api/v1/users/hana/images/${image.id}/check`, { method: 'POST', headers });
    expect(first.status).toBe(202);
    const job = (await first.json()) as { id: number; status: string };
    expect(job.status).toBe('queued');
    const check = (await waitForCheck(hub, token, job.id)) as { id: number; status: string; reusedFrom: number | null; digest: string };
    // Another image of hana's had this digest checked already (above).
    expect(check).toMatchObject({ status: 'passed', reusedFrom: expect.any(Number) });
    const followed = await fetch(`${hub.serviceUrl}api/v1/checks/${check.id}`, { headers });
    expect(followed.status).toBe(200);
    expect(((await followed.json()) as { digest: string }).digest).toBe(check.digest);
    // Another user's check is not there for them.
    const other = await hub.userToken('ivan');
    expect((await fetch(`${hub.serviceUrl}api/v1/checks/${check.id}`, { headers: { Authorization: `token ${other}` } })).status).toBe(404);
  });
});
