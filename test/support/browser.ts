/** Headless Debian Chromium driven by playwright-core (no browser download). */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { TestHub } from './hub.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Launches Chromium with the flags this closed network needs. */
export async function launchBrowser(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Where screenshots are kept as test artifacts. */
export const ARTIFACTS = path.resolve('test-artifacts');

/** Saves a full-page screenshot under test-artifacts/. */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Waits on a check page until the job has ended (the page reloads itself); returns the status. */
export async function waitForVerdict(page: Page, timeoutMs = 60_000): Promise<string> {
  const done = page.locator('[data-testid=verdict]:not([data-status=queued]):not([data-status=running])');
  await done.waitFor({ timeout: timeoutMs });
  return (await done.getAttribute('data-status')) ?? '';
}

/**
 * Logs `name` in at the hub's own login form, starting from the service, and
 * returns the page back on the service. `onHtml` sees every HTML page served.
 */
export async function hubLogin(
  browser: Browser,
  hub: TestHub,
  name: string,
  onHtml?: (html: string) => void,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  if (onHtml) {
    page.on('response', async (response) => {
      if ((response.headers()['content-type'] ?? '').includes('text/html')) onHtml(await response.text().catch(() => ''));
    });
  }
  await page.goto(hub.serviceUrl);
  await page.fill('input[name=username]', name);
  await page.fill('input[name=password]', 'any-password');
  await Promise.all([page.waitForURL(`${hub.serviceUrl}**`), page.click('[type=submit]')]);
  return { context, page };
}

/** The ids of the image tiles on the current page. */
export async function tileIds(page: Page): Promise<number[]> {
  const ids = await page.getByTestId('tile').evaluateAll((els) => els.map((e) => e.id));
  return ids.map((id) => Number(id.replace('image-', '')));
}

/** Saves an image through the service's form (`fields` by input name) and returns its id. */
export async function saveImageInForm(page: Page, hub: TestHub, fields: Record<string, string>): Promise<number> {
  await page.goto(hub.serviceUrl);
  const before = new Set(await tileIds(page));
  await page.goto(`${hub.serviceUrl}images/new`);
  for (const [field, value] of Object.entries(fields)) await page.fill(`#f-${field}`, value);
  await page.getByTestId('save').click();
  await page.getByTestId('notice').filter({ hasText: 'Saved' }).waitFor();
  const [id] = (await tileIds(page)).filter((id) => !before.has(id));
  if (id === undefined) throw new Error('the form saved no new image');
  return id;
}
