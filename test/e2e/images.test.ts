/**
 * The custom image form in real headless Chromium, after a real hub login;
 * the same rules through the JSON API; and what must never leak.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testAccess } from '../support/identities.js';
import { ImageService } from '../../server/images/service.js';
import { ImageStore } from '../../server/images/store.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, sqliteFilename, type Knex } from '../../server/store/db.js';
import { staticCatalog } from '../../server/systems/schema.js';
import { hubLogin, launchBrowser, saveImageInForm, screenshot, tileIds } from '../support/browser.js';
import { startHub, type TestHub } from '../support/hub.js';

const SECRET = 'Pa55-w0rd-for-the-registry-9f3b1c';

let hub: TestHub;
let browser: Browser;
let db: Knex;
/** Every HTML page the service served in these tests. */
const pagesServed: string[] = [];

beforeAll(async () => {
  hub = await startHub(18200);
  browser = await launchBrowser();
  db = openDatabase(hub.databaseUrl);
});

afterAll(async () => {
  await db?.destroy();
  await browser?.close();
  await hub?.stop();
});

function login(name: string): Promise<{ context: BrowserContext; page: Page }> {
  return hubLogin(browser, hub, name, (html) => pagesServed.push(html));
}

/** The service's own view of the stored credential, opened with the demo hub's key. */
async function storedPassword(owner: string, id: number): Promise<string | undefined> {
  const key = Buffer.from(fs.readFileSync(path.join(hub.dir, 'crypt_key'), 'utf8').trim(), 'base64');
  const service = new ImageService({
    store: new ImageStore(db),
    access: testAccess,
    systems: staticCatalog([]),
    keyring: await createKeyring([new Uint8Array(key)]),
  });
  return (await service.openCredential(owner, id))?.password;
}

async function rowCount(table: string, where: Record<string, unknown> = {}): Promise<number> {
  const [row] = (await db(table).where(where).count({ n: '*' })) as Array<{ n: number | string }>;
  return Number(row?.n ?? 0);
}

const PRIVATE_IMAGE = { image: 'registry.example.com/lab/env:1.3', registry: 'registry.example.com', username: 'erin', password: SECRET };

describe('the image form in Chromium', () => {
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    ({ context, page } = await login('erin'));
  });
  afterAll(async () => {
    await context?.close();
  });

  it('starts with an empty list that says what to do', async () => {
    const newcomer = await login('ivy');
    await expect(newcomer.page.getByTestId('empty').textContent()).resolves.toContain('No custom images yet');
    await newcomer.context.close();
  });

  it('shows each validation message next to its field, keeps the values but never the password, and stores nothing', async () => {
    const stored = await rowCount('images', { owner: 'erin' });
    await page.goto(`${hub.serviceUrl}images/new`);
    await page.fill('#f-image', 'Jupyter/Notebook:latest');
    await page.fill('#f-registry', 'registry.example.com');
    await page.fill('#f-username', 'erin');
    await page.fill('#f-password', SECRET);
    await page.fill('#f-mountPath', '/etc/jupyter');
    await page.getByTestId('save').click();

    await expect(page.getByTestId('form-errors').textContent()).resolves.toContain('Nothing was saved');
    await expect(page.getByTestId('error-image').textContent()).resolves.toContain('Repository names are lowercase');
    await expect(page.getByTestId('error-mountPath').textContent()).resolves.toContain('/etc');
    await expect(page.inputValue('#f-image')).resolves.toBe('Jupyter/Notebook:latest');
    await expect(page.inputValue('#f-username')).resolves.toBe('erin');
    await expect(page.inputValue('#f-password')).resolves.toBe('');
    await screenshot(page, 'image-form-errors');
    expect(await rowCount('images', { owner: 'erin' })).toBe(stored);

    // A private registry that is not where the image lives: both hosts named.
    await page.fill('#f-image', 'lab/env:1.3');
    await page.fill('#f-mountPath', '');
    await page.getByTestId('save').click();
    await expect(page.getByTestId('error-image').textContent()).resolves.toMatch(/docker\.io .*registry\.example\.com/);
    expect(await rowCount('images', { owner: 'erin' })).toBe(stored);
  });

  it('creates an image with a private registry login', async () => {
    await page.goto(`${hub.serviceUrl}images/new`);
    await page.fill('#f-name', 'My lab env');
    await page.fill('#f-image', 'https://registry.example.com/lab/env:1.3');
    await page.fill('#f-registry', 'https://registry.example.com');
    await page.fill('#f-username', 'erin');
    await page.fill('#f-password', SECRET);
    await page.fill('#f-mountPath', '/home/jovyan/data/');
    await screenshot(page, 'image-form');
    await page.getByTestId('save').click();

    await expect(page.getByTestId('notice').textContent()).resolves.toContain('Saved “My lab env”');
    const tile = page.locator('[data-testid=tile]', { hasText: 'My lab env' });
    await expect(tile.getByTestId('tile-image').textContent()).resolves.toBe('registry.example.com/lab/env:1.3');
    await expect(tile.getByTestId('tile-credential').textContent()).resolves.toBe('erin @ registry.example.com');
    await expect(tile.getByTestId('status').textContent()).resolves.toContain('Never checked');
    const imageId = Number((await tile.getAttribute('id'))?.replace('image-', ''));
    expect(await storedPassword('erin', imageId)).toBe(SECRET);
    expect(await rowCount('audit', { action: 'image.create', target_id: String(imageId) })).toBe(1);
  });

  it('warns about an unpinned tag but saves the image', async () => {
    await page.goto(`${hub.serviceUrl}images/new`);
    await page.fill('#f-image', 'jupyter/base-notebook');
    await page.getByTestId('save').click();
    await expect(page.getByTestId('saved-warning').textContent()).resolves.toMatch(/latest.*Pin a tag/);
    await screenshot(page, 'image-tiles');
  });

  it('keeps the stored password when the field is left blank on edit', async () => {
    const imageId = await saveImageInForm(page, hub, PRIVATE_IMAGE);
    await page.goto(`${hub.serviceUrl}images/${imageId}/edit`);
    // The password is never rendered back.
    await expect(page.inputValue('#f-password')).resolves.toBe('');
    expect(await page.content()).not.toContain(SECRET);
    await page.fill('#f-mountPath', '/data/erin');
    await page.getByTestId('save').click();
    await expect(page.locator(`#image-${imageId}`).textContent()).resolves.toContain('/data/erin');
    await expect(page.locator(`#image-${imageId} [data-testid=tile-credential]`).textContent()).resolves.toBe(
      'erin @ registry.example.com',
    );
    expect(await storedPassword('erin', imageId)).toBe(SECRET);
  });

  it('removes the credentials when asked to', async () => {
    const imageId = await saveImageInForm(page, hub, PRIVATE_IMAGE);
    expect(await rowCount('credentials', { image_id: imageId })).toBe(1);
    await page.goto(`${hub.serviceUrl}images/${imageId}/edit`);
    await page.getByTestId('remove-credentials').check();
    await page.getByTestId('save').click();
    await expect(page.locator(`#image-${imageId} [data-testid=tile-credential]`).textContent()).resolves.toBe('none');
    expect(await rowCount('credentials', { image_id: imageId })).toBe(0);
  });

  it('deletes the configuration and its secret for good', async () => {
    const imageId = await saveImageInForm(page, hub, PRIVATE_IMAGE);
    expect(await rowCount('credentials', { image_id: imageId })).toBe(1);

    await page.locator(`#image-${imageId} [data-testid=delete]`).click();
    await page.getByTestId('confirm-delete').click();
    await expect(page.getByTestId('notice').textContent()).resolves.toContain('deleted');
    expect(await tileIds(page)).not.toContain(imageId);
    expect(await rowCount('images', { id: imageId })).toBe(0);
    expect(await rowCount('credentials', { image_id: imageId })).toBe(0);
    expect(await rowCount('audit', { action: 'image.delete', target_id: String(imageId) })).toBe(1);
  });

  it("answers 404 on every route for another user's image", async () => {
    const erinsId = await saveImageInForm(page, hub, { ...PRIVATE_IMAGE, image: 'registry.example.com/lab/private:2' });

    const other = await login('frank');
    await other.page.goto(`${hub.serviceUrl}images/new`);
    const csrf = await other.page.inputValue('input[name=_csrf]');
    for (const route of [`images/${erinsId}/edit`, `images/${erinsId}/delete`]) {
      expect((await other.page.goto(`${hub.serviceUrl}${route}`))?.status()).toBe(404);
    }
    for (const route of [`images/${erinsId}`, `images/${erinsId}/delete`]) {
      const res = await other.page.request.post(`${hub.serviceUrl}${route}`, { form: { _csrf: csrf, system: 'default', image: 'x/y:1' } });
      expect(res.status()).toBe(404);
    }
    expect(await storedPassword('erin', erinsId)).toBe(SECRET);
    await other.context.close();
  });

  it('refuses a form post without its CSRF token', async () => {
    const stored = await rowCount('images', { owner: 'erin' });
    const res = await page.request.post(`${hub.serviceUrl}images`, { form: { system: 'default', image: 'a/b:1' } });
    expect(res.status()).toBe(403);
    expect(await res.text()).toContain('Reload the page');
    expect(await rowCount('images', { owner: 'erin' })).toBe(stored);
  });
});

describe('the image API', () => {
  let token: string;
  const api = (p: string, init: RequestInit = {}) =>
    fetch(`${hub.serviceUrl}api/v1/${p}`, {
      ...init,
      headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json', ...(init.headers ?? {}) },
    });

  beforeAll(async () => {
    token = await hub.userToken('grace');
  });

  // The parser's and the mount rules' tables are tested in test/unit; these two prove the API applies them.
  it.each([
    ['image', { image: 'Jupyter/Notebook:latest' }, /lowercase/],
    ['mountPath', { image: 'a/b:1', mountPath: '/etc/jupyter' }, /\/etc/],
  ] as const)('refuses a bad %s with a 400 naming the field, storing nothing', async (field, input, message) => {
    const res = await api('users/grace/images', { method: 'POST', body: JSON.stringify({ system: 'default', ...input }) });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { message: string; field: string };
    expect(body.field).toBe(field);
    expect(body.message).toMatch(message);
    expect(await rowCount('images', { owner: 'grace' })).toBe(0);
  });

  it('creates, reads, updates and deletes with the same rules as the form', async () => {
    const created = await api('users/grace/images', {
      method: 'POST',
      body: JSON.stringify({
        system: 'default',
        image: 'registry.example.com/g/env:1',
        registry: 'registry.example.com',
        username: 'grace',
        password: SECRET,
      }),
    });
    expect(created.status).toBe(201);
    const image = (await created.json()) as { id: number; credential: unknown };
    expect(image.credential).toEqual({ registry: 'registry.example.com', username: 'grace' });
    expect(JSON.stringify(image)).not.toContain(SECRET);

    const updated = await api(`users/grace/images/${image.id}`, {
      method: 'PUT',
      body: JSON.stringify({
        system: 'default',
        image: 'registry.example.com/g/env:2',
        registry: 'registry.example.com',
        username: 'grace',
      }),
    });
    expect(updated.status).toBe(200);
    expect(await storedPassword('grace', image.id)).toBe(SECRET);

    expect((await api(`users/grace/images/${image.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await api(`users/grace/images/${image.id}`)).status).toBe(404);
  });

  it("hides other users' images and refuses bad ids", async () => {
    expect((await api('users/erin/images')).status).toBe(404);
    expect((await api('users/grace/images/abc')).status).toBe(400);
    expect((await api('users/grace/images/0')).status).toBe(400);
  });
});

describe('secrets never leak', () => {
  it('is in no page served, no log line and no byte of the database files', async () => {
    expect(pagesServed.length).toBeGreaterThan(10);
    for (const html of pagesServed) expect(html).not.toContain(SECRET);
    expect(hub.log()).not.toContain(SECRET);
    const file = sqliteFilename(hub.databaseUrl);
    for (const suffix of ['', '-wal', '-shm']) {
      if (fs.existsSync(file + suffix)) expect(fs.readFileSync(file + suffix).includes(Buffer.from(SECRET))).toBe(false);
    }
  });
});
