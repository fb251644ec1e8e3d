/**
 * Login through a real JupyterHub: the user logs in at the hub, is sent to
 * the service, completes OAuth and sees their name; state is checked; logout
 * ends the session. API tokens resolve to the right identity and scopes.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, screenshot } from '../support/browser.js';
import { startHub, type TestHub } from '../support/hub.js';

let hub: TestHub;
let browser: Browser;

beforeAll(async () => {
  // The hub is asked again who a session's user is after a second.
  hub = await startHub(18100, { CUSTOM_IMAGES_AUTH_CACHE_SECONDS: '1' });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
});

/** Logs `name` in at the hub's own login form, starting from the service. */
async function loginThroughHub(name: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(hub.serviceUrl);
  // Not logged in anywhere: the service sends us to the hub, which asks for login.
  expect(new URL(page.url()).pathname).toBe('/hub/login');
  await page.fill('input[name=username]', name);
  await page.fill('input[name=password]', 'any-password');
  await Promise.all([page.waitForURL(`${hub.serviceUrl}**`), page.click('[type=submit]')]);
  return { context, page };
}

describe('browser login through the hub', () => {
  it('lands on the service page with the user name shown', async () => {
    const { context, page } = await loginThroughHub('alice');
    expect(page.url()).toBe(hub.serviceUrl);
    await expect(page.getByTestId('signed-in-as').textContent()).resolves.toBe('alice');
    await expect(page.getByTestId('user-name').textContent()).resolves.toBe('alice');
    await screenshot(page, 'login-home');

    // The session cookie is scoped to the service and hidden from scripts.
    const cookie = (await context.cookies()).find((c) => c.name === 'custom-images-session');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/services/custom-images/' });
    await context.close();
  });

  it('after logout, the page asks for login again', async () => {
    const { context, page } = await loginThroughHub('bob');
    await page.getByTestId('logout').click();
    await page.waitForURL(/\/hub\/(login|logout)/);
    await page.goto(hub.serviceUrl);
    expect(new URL(page.url()).pathname).toBe('/hub/login');
    await expect(page.getByTestId('signed-in-as').count()).resolves.toBe(0);
    await context.close();
  });

  it("logs out only by a POST with the form's token: a link or a forged form does not", async () => {
    const { context, page } = await loginThroughHub('bea');
    // A GET (a link, a prefetch, an <img>) asks and changes nothing.
    await page.goto(`${hub.serviceUrl}logout`);
    await expect(page.getByTestId('logout-confirm').count()).resolves.toBe(1);
    // A POST without the token (another site's form) is refused.
    const forged = await page.evaluate(
      async (url) =>
        (await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: '' })).status,
      `${hub.serviceUrl}logout`,
    );
    expect(forged).toBe(403);
    await page.goto(hub.serviceUrl);
    await expect(page.getByTestId('signed-in-as').textContent()).resolves.toBe('bea');
    await page.goto(`${hub.serviceUrl}logout`);
    await page.getByTestId('logout-confirm').click();
    await page.waitForURL(/\/hub\/(login|logout)/);
    await context.close();
  });

  it('takes a hub admin demoted at the hub off the admin pages within the identity cache time', async () => {
    await hub.userToken('ann', { admin: true });
    const { context, page } = await loginThroughHub('ann');
    expect((await page.goto(`${hub.serviceUrl}admin/systems`))?.status()).toBe(200);
    const demoted = await fetch(`${hub.apiUrl}/users/ann`, {
      method: 'PATCH',
      headers: { Authorization: `token ${hub.adminToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ admin: false }),
    });
    expect(demoted.status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await page.goto(`${hub.serviceUrl}admin/systems`))?.status()).toBe(403);
    await context.close();
  });

  it('ends the session of a user the hub removed', async () => {
    await hub.userToken('rex');
    const { context, page } = await loginThroughHub('rex');
    expect(
      (await fetch(`${hub.apiUrl}/users/rex`, { method: 'DELETE', headers: { Authorization: `token ${hub.adminToken}` } })).status,
    ).toBe(204);
    await new Promise((r) => setTimeout(r, 1500));
    await page.goto(hub.serviceUrl);
    // The session is gone: the service sent the browser to the hub's login.
    expect(new URL(page.url()).pathname).toBe('/hub/login');
    await context.close();
  });

  it('marks the cookie Secure when the browser came over https (X-Forwarded-Proto from the proxy), and sends HSTS then', async () => {
    // Straight to the service (the demo hub runs it on the proxy's port + 10), as the proxy would forward a request.
    const direct = 'http://127.0.0.1:18110/services/custom-images/login';
    const plain = await fetch(direct, { redirect: 'manual' });
    expect(plain.headers.getSetCookie().join(';')).not.toMatch(/;\s*Secure/i);
    expect(plain.headers.get('strict-transport-security')).toBeNull();
    const https = await fetch(direct, { redirect: 'manual', headers: { 'X-Forwarded-Proto': 'https' } });
    expect(https.headers.getSetCookie().join(';')).toMatch(/custom-images-session=[^;]+;.*Secure/i);
    expect(https.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
  });

  it('returns to the page the user asked for', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${hub.serviceUrl}no-such-page`);
    await page.fill('input[name=username]', 'carol');
    await page.fill('input[name=password]', 'x');
    await Promise.all([page.waitForURL(`${hub.serviceUrl}**`), page.click('[type=submit]')]);
    expect(page.url()).toBe(`${hub.serviceUrl}no-such-page`);
    await expect(page.locator('h1').textContent()).resolves.toBe('That did not work');
    await context.close();
  });
});

describe('a session past its absolute lifetime', () => {
  // It starts a hub of its own: more than the default 30 s on a loaded machine.
  it('goes through the hub again, however active it was', { timeout: 120_000 }, async () => {
    // Four seconds of session (0.0011 hours), on a hub of its own.
    const short = await startHub(18150, { CUSTOM_IMAGES_SESSION_MAX_HOURS: '0.0011' });
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(short.serviceUrl);
      await page.fill('input[name=username]', 'sam');
      await page.fill('input[name=password]', 'x');
      await Promise.all([page.waitForURL(`${short.serviceUrl}**`), page.click('[type=submit]')]);
      const authorized: string[] = [];
      page.on('request', (request) => {
        if (request.url().includes('/hub/api/oauth2/authorize')) authorized.push(request.url());
      });
      await page.goto(short.serviceUrl);
      expect(authorized).toEqual([]);
      await new Promise((r) => setTimeout(r, 4500));
      await page.goto(short.serviceUrl);
      // A new login through the hub (which still knows the browser, so nobody is asked for a password).
      expect(authorized).toHaveLength(1);
      await expect(page.getByTestId('signed-in-as').textContent()).resolves.toBe('sam');
    } finally {
      await context.close();
      await short.stop();
    }
  });
});

describe('the OAuth callback', () => {
  /** Starts a login without a browser: the session cookie and the state we were given. */
  async function startLogin() {
    const res = await fetch(`${hub.serviceUrl}login`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location') ?? '', hub.url);
    expect(location.pathname).toBe('/hub/api/oauth2/authorize');
    expect(location.searchParams.get('redirect_uri')).toBe('/services/custom-images/oauth_callback');
    const cookie = res.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    return { cookie, state: location.searchParams.get('state') ?? '' };
  }

  it('refuses a callback without state (400)', async () => {
    const { cookie } = await startLogin();
    const res = await fetch(`${hub.serviceUrl}oauth_callback?code=abc`, { headers: { cookie }, redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('missing its code or state');
  });

  it('refuses a callback whose state is not the one sent (403)', async () => {
    const { cookie, state } = await startLogin();
    expect(state).not.toBe('');
    const res = await fetch(`${hub.serviceUrl}oauth_callback?code=abc&state=not-${state}`, {
      headers: { cookie },
      redirect: 'manual',
    });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('does not match');
  });

  it('refuses a callback in a browser that never started a login (403)', async () => {
    const res = await fetch(`${hub.serviceUrl}oauth_callback?code=abc&state=xyz`, { redirect: 'manual' });
    expect(res.status).toBe(403);
  });
});

describe('API authentication with hub tokens', () => {
  async function me(token: string, scheme = 'token') {
    const res = await fetch(`${hub.serviceUrl}api/v1/me`, { headers: { Authorization: `${scheme} ${token}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it("resolves a user's token to the user and the token's scopes", async () => {
    const token = await hub.userToken('dave');
    const { status, body } = await me(token);
    expect(status).toBe(200);
    expect(body).toMatchObject({ kind: 'user', name: 'dave', admin: false });
    expect(body.scopes).toContain('access:services!service=custom-images');
    // Bearer works the same.
    expect((await me(token, 'Bearer')).body.name).toBe('dave');
  });

  it("resolves the spawner hook's service token with the launch scope", async () => {
    const { status, body } = await me(hub.launchToken);
    expect(status).toBe(200);
    expect(body).toMatchObject({ kind: 'service', name: 'custom-images-launcher' });
    expect(body.scopes).toContain('custom:custom-images:launch');
  });

  it("resolves the service's own token to the service", async () => {
    const { status, body } = await me(hub.serviceToken);
    expect(status).toBe(200);
    expect(body).toMatchObject({ kind: 'service', name: 'custom-images' });
  });

  it('refuses a wrong token with 403 and a missing one with 401', async () => {
    const wrong = await me('not-a-real-token');
    expect(wrong.status).toBe(403);
    expect(wrong.body).toEqual({ status: 403, message: 'The hub does not accept this token.' });
    const res = await fetch(`${hub.serviceUrl}api/v1/me`);
    expect(res.status).toBe(401);
  });
});
