/**
 * What an image holds, through a real hub: the packages API (parsed by its
 * schema; 404 for another user), the check page's table searchable with
 * `?q=` without JavaScript and as you type with it, the tile's summary; and
 * an admin's forecast of a hub upgrade, published to the owners' tiles.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackagesResponseSchema } from '../../server/web/inventoryPresenters.js';
import { ForecastResponseSchema } from '../../server/web/forecastPresenters.js';
import { hubLogin, launchBrowser } from '../support/browser.js';
import { startHub, waitForCheck, type TestHub } from '../support/hub.js';
import { pushImage, pythonWithJupyterhub, singleuserScript, type ImageSpec } from '../support/images.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';

let hub: TestHub;
let registries: TestRegistries;
let browser: Browser;
const tokens: Record<string, string> = {};
const ids: Record<string, number> = {};
let system = '';

/** JupyterHub `jupyterhub` on Python `python`, with JupyterLab, numpy and pandas beside it. */
function labImage(jupyterhub: string, python = '3.11'): ImageSpec {
  const site = '/usr/lib/python3/dist-packages';
  const dist = (name: string, version: string) => ({
    [`${site}/${name}-${version}.dist-info/METADATA`]: `Name: ${name}\nVersion: ${version}\n`,
  });
  return {
    layers: [
      {
        files: {
          ...pythonWithJupyterhub({ jupyterhub, python }),
          ...dist('jupyterlab', '4.2.5'),
          ...dist('numpy', '1.26.4'),
          ...dist('pandas', '2.2.2'),
          '/var/lib/dpkg/status':
            'Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\n\nPackage: tzdata\nStatus: install ok installed\nVersion: 2024a-0\nArchitecture: all\n',
        },
      },
      { files: { '/usr/local/bin/jupyterhub-singleuser': singleuserScript(`/usr/bin/python${python}`) } },
    ],
  };
}

async function api(who: string, method: string, p: string, body?: unknown) {
  const res = await fetch(`${hub.serviceUrl}api/v1/${p}`, {
    method,
    headers: { Authorization: `token ${tokens[who]}`, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as unknown };
}

/** Saves `image` for uma and checks it through the API; its id. */
async function saveAndCheck(name: string, image: string): Promise<number> {
  const created = await api('uma', 'POST', 'users/uma/images', { system, image, name });
  expect(created.status).toBe(201);
  const id = (created.body as { id: number }).id;
  const check = await api('uma', 'POST', `users/uma/images/${id}/check`);
  expect((await waitForCheck(hub, tokens.uma ?? '', (check.body as { id: number }).id)).status).toBe('passed');
  return id;
}

beforeAll(async () => {
  registries = await startRegistries();
  await pushImage(registries.open, 'inv/hub3', '1', labImage('3.1.1'));
  await pushImage(registries.open, 'inv/hub5', '1', labImage('5.1.0', '3.9'));
  hub = await startHub(19850, { CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(',') });
  tokens.uma = await hub.userToken('uma');
  tokens.vic = await hub.userToken('vic');
  tokens.admin = await hub.userToken('admin');
  browser = await launchBrowser();
  system = ((await api('uma', 'GET', 'systems')).body as Array<{ slug: string }>)[0]?.slug ?? '';
  ids.hub3 = await saveAndCheck('hub3', `${registries.open}/inv/hub3:1`);
  ids.hub5 = await saveAndCheck('hub5', `${registries.open}/inv/hub5:1`);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  await registries?.stop();
});

describe('the packages API', () => {
  it('answers the inventory of the checked digest to its owner, parsed by its schema; 404 for another user', async () => {
    const res = await api('uma', 'GET', `users/uma/images/${ids.hub3}/packages`);
    expect(res.status).toBe(200);
    const answer = PackagesResponseSchema.parse(res.body);
    expect(answer.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(answer.inventory?.python).toEqual({ executable: '/usr/bin/python3.11', version: '3.11' });
    expect(answer.inventory?.pythonPackages.map((p) => `${p.name}==${p.version}`)).toEqual([
      'jupyterhub==3.1.1',
      'jupyterlab==4.2.5',
      'numpy==1.26.4',
      'pandas==2.2.2',
    ]);
    expect(answer.inventory?.osPackages).toEqual({
      manager: 'dpkg',
      packages: [
        { name: 'libc6', version: '2.36-9', arch: 'amd64' },
        { name: 'tzdata', version: '2024a-0', arch: 'all' },
      ],
    });
    expect((await api('vic', 'GET', `users/uma/images/${ids.hub3}/packages`)).status).toBe(404);
    expect((await api('uma', 'GET', `users/uma/images/999999/packages`)).status).toBe(404);
    expect((await api('uma', 'GET', `users/uma/images/x/packages`)).status).toBe(400);
  });
});

describe('the check page and the tile', () => {
  it('shows the table searchable with ?q= without JavaScript, and the tile’s summary', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const { page } = await hubLogin(browser, hub, 'uma').then(async ({ context: withJs }) => {
      // Log in with JavaScript (the hub's form), then read the service's pages without it.
      await context.addCookies(await withJs.cookies());
      await withJs.close();
      return { page: await context.newPage() };
    });
    await page.goto(hub.serviceUrl);
    await expect(page.locator(`#image-${ids.hub3} [data-testid=tile-inventory]`).textContent()).resolves.toBe(
      'Python 3.11 · 4 packages · JupyterLab 4.2',
    );
    await page.locator(`#image-${ids.hub3} [data-testid=tile-inventory] a`).click();
    await expect(page.getByTestId('packages').locator('tbody tr').count()).resolves.toBe(6);
    await page.fill('[data-testid=inventory-q]', 'numpy');
    await page.getByRole('button', { name: 'Search' }).click();
    expect(new URL(page.url()).searchParams.get('q')).toBe('numpy');
    await expect(page.getByTestId('packages').locator('tbody tr').count()).resolves.toBe(1);
    await expect(page.getByTestId('inventory-count').textContent()).resolves.toBe('1 of 6 packages');
    await context.close();
  }, 90_000);

  it('filters as you type with JavaScript', async () => {
    const { context, page } = await hubLogin(browser, hub, 'uma');
    await page.goto(`${hub.serviceUrl}images/${ids.hub3}/checks/${await newestCheck(ids.hub3 ?? 0)}`);
    await page.getByTestId('inventory-q').pressSequentially('dpkg');
    await expect(page.locator('[data-testid=packages] tbody tr:not([hidden])').count()).resolves.toBe(2);
    await expect(page.getByTestId('inventory-count').textContent()).resolves.toBe('2 of 6 packages');
    await context.close();
  }, 90_000);
});

async function newestCheck(id: number): Promise<number> {
  const image = (await api('uma', 'GET', `users/uma/images/${id}`)).body as { status: { checkId: number } };
  return image.status.checkId;
}

describe('the forecast for hub admins', () => {
  it('says how many would fail or warn and why, refuses others, and shows owners their line once published', async () => {
    const target = { hubVersion: '5.2.0', pythonMin: '3.10' };
    expect((await api('uma', 'POST', `systems/${system}/forecasts`, target)).status).toBe(403);
    const bad = await api('admin', 'POST', `systems/${system}/forecasts`, { hubVersion: 'next' });
    expect(bad).toMatchObject({ status: 400, body: { field: 'hubVersion', message: expect.stringMatching(/5\.2\.1/) } });

    const created = await api('admin', 'POST', `systems/${system}/forecasts`, target);
    expect(created.status).toBe(201);
    const forecast = ForecastResponseSchema.parse(created.body);
    expect(forecast.summary).toBe('1 would fail, 1 would warn');
    const line = (id: number) => forecast.results.find((r) => r.imageId === id);
    expect(line(ids.hub5 ?? 0)).toMatchObject({ verdict: 'fail', reasons: [expect.stringContaining('Python 3.9')] });
    expect(line(ids.hub3 ?? 0)).toMatchObject({
      verdict: 'warn',
      reasons: [expect.stringContaining('JupyterHub 3.1.1, the hub runs 5.2.0')],
    });

    // Not on the tiles until published.
    const { context, page } = await hubLogin(browser, hub, 'uma');
    await page.goto(hub.serviceUrl);
    await expect(page.getByTestId('tile-forecast').count()).resolves.toBe(0);
    const published = await api('admin', 'POST', `forecasts/${forecast.id}/publish`);
    expect(ForecastResponseSchema.parse(published.body).published?.by).toBe('admin');
    await page.goto(hub.serviceUrl);
    await expect(page.locator(`#image-${ids.hub5} [data-testid=tile-forecast]`).getAttribute('data-verdict')).resolves.toBe('fail');
    await expect(page.locator(`#image-${ids.hub5} [data-testid=tile-forecast]`).textContent()).resolves.toContain(
      'With JupyterHub 5.2.0, Python 3.10– (planned by the admins) this image would fail its check',
    );
    await context.close();

    // The admin's pages: the form, the result in words.
    const admin = await hubLogin(browser, hub, 'admin');
    await admin.page.goto(`${hub.serviceUrl}admin/forecasts`);
    await admin.page.fill('[data-testid=forecast-hub]', '4');
    await admin.page.getByTestId('forecast-run').click();
    await expect(admin.page.getByTestId('forecast-summary').textContent()).resolves.toBe('0 would fail, 2 would warn');
    await admin.context.close();
  }, 120_000);
});
