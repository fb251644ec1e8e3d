/**
 * Admin pages in Chromium after a real hub login: the demo's seeded systems,
 * creating, editing and disabling a system, site registry credentials used
 * for users' images; 403 for everyone else; every change audited.
 */
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { hubLogin, launchBrowser, screenshot, waitForVerdict } from '../support/browser.js';
import { startHub, type TestHub } from '../support/hub.js';
import { pushImage, pythonWithJupyterhub, singleuserScript } from '../support/images.js';
import { PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';

let hub: TestHub;
let registries: TestRegistries;
let browser: Browser;
let db: Knex;
const html: string[] = [];

beforeAll(async () => {
  registries = await startRegistries();
  await pushImage(registries.open, 'site/env', '1', {
    layers: [
      { files: pythonWithJupyterhub() },
      { files: { '/usr/local/bin/jupyterhub-singleuser': singleuserScript('/usr/bin/python3') } },
    ],
  });
  hub = await startHub(18800, {
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    CUSTOM_IMAGES_SYSTEMS_FILE: path.resolve('jupyterhub_config/demo-systems.json'),
  });
  browser = await launchBrowser();
  db = openDatabase(hub.databaseUrl);
}, 120_000);

afterAll(async () => {
  await db?.destroy();
  await browser?.close();
  await hub?.stop();
  await registries?.stop();
});

async function login(name: string): Promise<Page> {
  return (await hubLogin(browser, hub, name, (page) => html.push(page))).page;
}

describe('systems for hub admins', () => {
  let admin: Page;
  beforeAll(async () => {
    admin = await login('admin');
  });

  it('starts with the demo systems deNBI-Cloud and JSC-Cloud', async () => {
    await admin.getByRole('link', { name: 'Systems' }).click();
    await expect(admin.locator('[data-slug]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-slug')))).resolves.toEqual([
      'JSC-Cloud',
      'deNBI-Cloud',
    ]);
  });

  it('creates a system, with messages next to wrong fields and nothing saved', async () => {
    await admin.getByTestId('new-system').click();
    await admin.fill('#f-slug', 'site');
    await admin.fill('#f-displayName', 'Site registry');
    await admin.fill('#f-allowedRegistries', 'not a pattern');
    await admin.fill('#f-mountPrefixes', '/etc');
    await admin.getByTestId('save').click();
    await expect(admin.getByTestId('error-allowedRegistries').textContent()).resolves.toContain('is not a registry pattern');
    await expect(admin.getByTestId('error-mountPrefixes').textContent()).resolves.toContain('/etc');
    expect(await db('systems').where({ slug: 'site' }).first()).toBeUndefined();

    await admin.fill('#f-allowedRegistries', `${registries.basic}/*`);
    await admin.fill('#f-mountPrefixes', '/home/jovyan');
    await admin.getByTestId('save').click();
    await expect(admin.locator('[data-slug=site]').textContent()).resolves.toContain('Site registry');
    await screenshot(admin, 'admin-systems');
  });

  it('disables and enables a system', async () => {
    await admin.goto(`${hub.serviceUrl}admin/systems/site/edit`);
    await admin.locator('input[name=enabled]').uncheck();
    await admin.getByTestId('save').click();
    await expect(admin.locator('[data-slug=site]').textContent()).resolves.toContain('disabled');
    await admin.goto(`${hub.serviceUrl}admin/systems/site/edit`);
    await admin.locator('input[name=enabled]').check();
    await admin.getByTestId('save').click();
    await expect(admin.locator('[data-slug=site]').textContent()).resolves.not.toContain('disabled');
  });

  it('stores site credentials for a registry pattern, never showing the password', async () => {
    await admin.goto(`${hub.serviceUrl}admin/systems`);
    await admin.fill('#f-pattern', `${registries.basic}/*`);
    await admin.fill('#f-username', USER);
    await admin.fill('#f-password', PASSWORD);
    await admin.locator('form[action$="admin/credentials"] [type=submit]').click();
    await expect(admin.getByTestId('credentials').textContent()).resolves.toContain(USER);
    expect(await admin.content()).not.toContain(PASSWORD);
  });

  it('audits every admin change', async () => {
    const actions = ((await db('audit').where({ actor: 'admin' }).select('action')) as Array<{ action: string }>).map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['system.create', 'system.update', 'registry_credential.put']));
    expect(actions.filter((a) => a === 'system.update')).toHaveLength(2);
    for (const row of await db('audit')) expect(JSON.stringify(row)).not.toContain(PASSWORD);
  });
});

describe('everyone else', () => {
  it('gets 403 on the admin pages, and uses the site credentials without knowing them', async () => {
    const user = await login('nora');
    expect((await user.goto(`${hub.serviceUrl}admin/systems`))?.status()).toBe(403);
    expect((await user.goto(`${hub.serviceUrl}admin/systems/new`))?.status()).toBe(403);
    await user.goto(`${hub.serviceUrl}images/new`);
    await user.selectOption('#f-system', 'site');
    await user.fill('#f-image', `${registries.basic}/site/env:1`);
    await user.getByTestId('save').click();
    await user.locator('[data-testid=tile] [data-testid=check]').first().click();
    expect(await waitForVerdict(user)).toBe('passed');
    for (const page of html) expect(page).not.toContain(PASSWORD);
  });
});
