/**
 * Faults of the things the service depends on, with a real hub, real
 * registries and a real PostgreSQL: a registry that answers 500 or 429 and
 * then recovers, a registry that stalls, a database restarted under the
 * running service, and SIGTERM in the middle of many saves. The service must
 * get through each without a restart and tell the user what happened.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { openDatabase } from '../../server/store/db.js';
import { hubLogin, launchBrowser } from '../support/browser.js';
import { startHub, waitForCheck, type TestHub } from '../support/hub.js';
import { passingImage, pushImage } from '../support/images.js';
import { dockerSeed, writeSystemsFile } from '../support/systems.js';
import { startPrivatePostgres, type PrivatePostgres } from '../support/postgres.js';
import { faultyProxy, freePort, startRegistries, type TestRegistries } from '../support/registry.js';
import { startService } from '../support/service.js';

const good = passingImage();

let registries: TestRegistries;

beforeAll(async () => {
  registries = await startRegistries();
  await pushImage(registries.open, 'lab/good', '1', good);
}, 60_000);

afterAll(async () => {
  await registries?.stop();
});

function systemsFile(allowed: string[]): string {
  return writeSystemsFile([dockerSeed(allowed)]);
}

async function api(
  hub: TestHub,
  token: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const res = await fetch(`${hub.serviceUrl}api/v1/${route}`, {
    method,
    headers: { Authorization: `token ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Starts a check of the image and follows it to its end; returns the check. */
async function check(hub: TestHub, token: string, user: string, id: number): Promise<Record<string, unknown>> {
  const job = await api(hub, token, 'POST', `users/${user}/images/${id}/check`);
  expect(job.status).toBe(202);
  return waitForCheck(hub, token, Number(job.body.id), 60_000);
}

const messages = (c: Record<string, unknown>) => JSON.stringify(c.findings);

describe('a registry that fails, then recovers', () => {
  let hub: TestHub;
  let proxy: Awaited<ReturnType<typeof faultyProxy>>;
  let token: string;
  let imageId: number;

  beforeAll(async () => {
    proxy = await faultyProxy(registries.open);
    hub = await startHub(19100, {
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: proxy.host,
      CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile([`${proxy.host}/*`]),
      CUSTOM_IMAGES_REGISTRY_TIMEOUT_SECONDS: '2',
      CUSTOM_IMAGES_CHECK_DEADLINE_SECONDS: '10',
      CUSTOM_IMAGES_CHECK_CONCURRENCY: '1',
    });
    token = await hub.userToken('rita');
    const saved = await api(hub, token, 'POST', 'users/rita/images', { system: 'dock', image: `${proxy.host}/lab/good:1` });
    expect(saved.status).toBe(201);
    imageId = Number(saved.body.id);
  }, 120_000);

  afterAll(async () => {
    await hub?.stop();
    await proxy?.stop();
  });

  it('says the registry has a problem while it answers 500, after retrying, and passes once it is back', async () => {
    proxy.set({ kind: 'status', status: 500 });
    const failed = await check(hub, token, 'rita', imageId);
    expect(failed.status).toBe('error');
    expect(messages(failed)).toMatch(/has a problem \(HTTP 500\)\. Try again later/);
    // Retried before giving up.
    expect(proxy.seen['500']).toBeGreaterThanOrEqual(2);

    proxy.set({ kind: 'pass' });
    const passed = await check(hub, token, 'rita', imageId);
    expect(passed.status).toBe('passed');
  });

  it('waits out a short 429 as Retry-After asks, and says so when the wait is too long', async () => {
    proxy.set({ kind: 'status', status: 429, retryAfter: '120' });
    const limited = await check(hub, token, 'rita', imageId);
    expect(limited.status).toBe('error');
    expect(messages(limited)).toMatch(/limiting requests \(429\); it asks to wait 120 s/);

    // A registry asking for one second, then answering again: the check gets through.
    proxy.set({ kind: 'status', status: 429, retryAfter: '1' });
    const before = proxy.seen['429'] ?? 0;
    const recovering = setTimeout(() => proxy.set({ kind: 'pass' }), 1500);
    try {
      const passed = await check(hub, token, 'rita', imageId);
      expect(passed.status).toBe('passed');
      expect(proxy.seen['429']).toBeGreaterThan(before);
    } finally {
      clearTimeout(recovering);
    }
  });

  it('stops a check at its deadline when a registry sends a byte at a time, and the worker goes on', async () => {
    // Images of their own: no earlier result of the same digest is reused, each layer is downloaded.
    const fresh = async (name: string) => {
      await pushImage(registries.open, `lab/${name}`, '1', {
        layers: [...good.layers, { files: { [`/etc/${name}`]: randomBytes(64 * 1024).toString('hex') } }],
      });
      const saved = await api(hub, token, 'POST', 'users/rita/images', { system: 'dock', image: `${proxy.host}/lab/${name}:1` });
      return Number(saved.body.id);
    };
    const slow = await fresh('trickled');
    const next = await fresh('after-trickle');
    proxy.set({ kind: 'trickle', everyMs: 500 });
    const job = await api(hub, token, 'POST', `users/rita/images/${slow}/check`);
    const stopped = await waitForCheck(hub, token, Number(job.body.id), 60_000);
    expect(stopped.status).toBe('error');
    expect(stopped.findings).toEqual([
      expect.objectContaining({
        code: 'check.deadline',
        message: expect.stringMatching(/^The check took longer than 10 seconds and was stopped/),
      }),
    ]);
    // The one worker of this service is free again: the next check runs to its end.
    proxy.set({ kind: 'pass' });
    expect((await check(hub, token, 'rita', next)).status).toBe('passed');
  });

  it('gives up on a stalled registry after its timeout, stays responsive meanwhile, and passes once it answers', async () => {
    proxy.set({ kind: 'stall' });
    const job = await api(hub, token, 'POST', `users/rita/images/${imageId}/check`);
    expect(job.status).toBe(202);
    // The service answers other requests while the registry hangs: the list comes back with the check still going.
    const list = await api(hub, token, 'GET', 'users/rita/images');
    expect(list.status).toBe(200);
    expect(['queued', 'running']).toContain((await api(hub, token, 'GET', `checks/${String(job.body.id)}`)).body.status);
    const stalled = await waitForCheck(hub, token, Number(job.body.id), 30_000);
    expect(stalled.status).toBe('error');
    expect(messages(stalled)).toMatch(/cannot be reached: it did not answer in time/);

    proxy.set({ kind: 'pass' });
    expect((await check(hub, token, 'rita', imageId)).status).toBe('passed');
  });
});

describe('one user cannot exhaust the service', () => {
  let hub: TestHub;
  let proxy: Awaited<ReturnType<typeof faultyProxy>>;
  let browser: Browser;

  beforeAll(async () => {
    proxy = await faultyProxy(registries.open);
    hub = await startHub(19400, {
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: proxy.host,
      CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile([`${proxy.host}/*`]),
      CUSTOM_IMAGES_REGISTRY_TIMEOUT_SECONDS: '30',
      CUSTOM_IMAGES_CHECK_CONCURRENCY: '1',
      CUSTOM_IMAGES_MAX_QUEUED_CHECKS_PER_USER: '2',
      CUSTOM_IMAGES_MAX_STREAMS_PER_USER: '1',
    });
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await hub?.stop();
    await proxy?.stop();
  });

  it('refuses a third waiting check of one user with 429 in words, while another user still gets theirs queued', async () => {
    proxy.set({ kind: 'stall' });
    const [uli, vera] = [await hub.userToken('uli'), await hub.userToken('vera')];
    const image = async (token: string, user: string) =>
      Number((await api(hub, token, 'POST', `users/${user}/images`, { system: 'dock', image: `${proxy.host}/lab/good:1` })).body.id);
    const id = await image(uli, 'uli');
    expect((await api(hub, uli, 'POST', `users/uli/images/${id}/check`)).status).toBe(202);
    expect((await api(hub, uli, 'POST', `users/uli/images/${id}/check`)).status).toBe(202);
    const third = await api(hub, uli, 'POST', `users/uli/images/${id}/check`);
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('30');
    expect(third.body.message).toMatch(
      /uli has 2 checks waiting or running already \(at most 2\)\. Start another one when one of them is done/,
    );
    expect((await api(hub, vera, 'POST', `users/vera/images/${await image(vera, 'vera')}/check`)).status).toBe(202);
  });

  it('refuses a second open progress stream of one user with 429', async () => {
    const { page, context } = await hubLogin(browser, hub, 'uli');
    try {
      const list = (await api(hub, await hub.userToken('uli'), 'GET', 'users/uli/images')).body as unknown as Array<{
        id: number;
        status: { checkId: number };
      }>;
      const events = `${hub.serviceUrl}images/${list[0]!.id}/checks/${list[0]!.status.checkId}/events`;
      const statuses = await page.evaluate(async (url) => {
        const first = new EventSource(url);
        await new Promise((r) => first.addEventListener('progress', r, { once: true }));
        const second = await fetch(url);
        first.close();
        return { second: second.status, retryAfter: second.headers.get('retry-after'), text: await second.text() };
      }, events);
      expect(statuses).toMatchObject({ second: 429, retryAfter: '10' });
      expect(statuses.text).toMatch(/uli follows 1 running check already \(at most 1 at once\)/);
    } finally {
      await context.close();
      proxy.set({ kind: 'pass' });
    }
  });

  // Last in this group: the service stops.
  it('ends open progress streams at once when the service is told to stop, so that pages reconnect elsewhere', async () => {
    proxy.set({ kind: 'stall' });
    const token = await hub.userToken('wes');
    const saved = await api(hub, token, 'POST', 'users/wes/images', { system: 'dock', image: `${proxy.host}/lab/good:1` });
    const id = Number(saved.body.id);
    const job = await api(hub, token, 'POST', `users/wes/images/${id}/check`);
    expect(job.status).toBe(202);
    const { context } = await hubLogin(browser, hub, 'wes');
    try {
      const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
      const res = await fetch(`${hub.serviceUrl}images/${id}/checks/${Number(job.body.id)}/events`, { headers: { Cookie: cookie } });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = decoder.decode((await reader.read()).value);
      expect(text).toContain('event: progress');

      process.kill(hub.servicePid(), 'SIGTERM');
      // Ended by the service, not cut: a connection cut at the end of the shutdown grace period fails this read.
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value);
      expect(text).not.toContain('event: done');
    } finally {
      await context.close();
    }
  });
});

describe('PostgreSQL restarted under the running service', () => {
  let hub: TestHub;
  let pg: PrivatePostgres;
  let token: string;

  beforeAll(async () => {
    pg = await startPrivatePostgres(await freePort());
    hub = await startHub(19200, {
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
      CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile([`${registries.open}/*`]),
      CUSTOM_IMAGES_DATABASE_URL: pg.url,
    });
    token = await hub.userToken('pat');
  }, 120_000);

  afterAll(async () => {
    await hub?.stop();
    pg?.destroy();
  });

  it('answers 503 with a message while the database is away, and works again without a restart', async () => {
    const saved = await api(hub, token, 'POST', 'users/pat/images', {
      name: 'before',
      system: 'dock',
      image: `${registries.open}/lab/good:1`,
    });
    expect(saved.status).toBe(201);

    pg.stop();
    const list = await api(hub, token, 'GET', 'users/pat/images');
    expect(list.status).toBe(503);
    expect(list.body.message).toMatch(/database cannot be reached at the moment .* Nothing you saved is lost; try again in a minute/);
    expect(list.headers.get('retry-after')).toBe('10');
    const save = await api(hub, token, 'POST', 'users/pat/images', {
      name: 'during',
      system: 'dock',
      image: `${registries.open}/lab/good:1`,
    });
    expect(save.status).toBe(503);
    expect((await fetch(`${hub.serviceUrl}healthz`)).status).toBe(503);

    pg.start();
    // The pool drops its dead connections and opens new ones: the next requests work.
    const deadline = Date.now() + 20_000;
    let after = await api(hub, token, 'GET', 'users/pat/images');
    while (after.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      after = await api(hub, token, 'GET', 'users/pat/images');
    }
    expect(after.status).toBe(200);
    expect((after.body as unknown as Array<{ name: string }>).map((i) => i.name)).toEqual(['before']);
    expect((await fetch(`${hub.serviceUrl}healthz`)).status).toBe(200);
    // Saving and checking work again, the check worker included.
    const again = await api(hub, token, 'POST', 'users/pat/images', {
      name: 'after',
      system: 'dock',
      image: `${registries.open}/lab/good:1`,
    });
    expect(again.status).toBe(201);
    expect((await check(hub, token, 'pat', Number(again.body.id))).status).toBe('passed');
    // The log says what happened in one line per request, without a stack for each.
    expect(hub.log()).toMatch(/database unavailable/);
  }, 90_000);
});

describe('SIGTERM while many users save', () => {
  let hub: TestHub;

  beforeAll(async () => {
    hub = await startHub(19300, {});
  }, 120_000);

  afterAll(async () => {
    await hub?.stop();
  });

  it('finishes the saves in flight, refuses nothing with a 5xx, leaves nothing half-written, and exits 0', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-sigterm-'));
    const databaseUrl = `sqlite://${path.join(dir, 'db.sqlite')}`;
    // A second instance of the service beside the hub's own, registered with the hub's service token.
    const service = await startService({
      JUPYTERHUB_API_URL: `${hub.url}/hub/api`,
      JUPYTERHUB_API_TOKEN: hub.serviceToken,
      CUSTOM_IMAGES_DATABASE_URL: databaseUrl,
      CUSTOM_IMAGES_CRYPT_KEY: randomBytes(32).toString('base64'),
      CUSTOM_IMAGES_ALLOWED_REGISTRIES: '*',
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    });
    const users = Array.from({ length: 40 }, (_, i) => `term${i}`);
    const tokens = await hub.userTokens(users);
    const created: Array<{ id: number; owner: string }> = [];
    const serverErrors: string[] = [];
    let refusedAfterSignal = 0;
    let signalled = false;

    const save = async (user: string) => {
      for (let n = 0; ; n++) {
        try {
          const res = await fetch(`${service.url}api/v1/users/${user}/images`, {
            method: 'POST',
            headers: { Authorization: `token ${tokens.get(user) ?? ''}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({
              name: `img ${n}`,
              system: 'default',
              image: `registry.example.org/${user}/env:${n}`,
              registry: 'registry.example.org',
              username: user,
              password: `secret-${user}-${n}`,
            }),
          });
          const body = (await res.json()) as { id?: number; message?: string };
          if (res.status >= 500) serverErrors.push(`${res.status} ${body.message ?? ''}`);
          if (res.status === 201) created.push({ id: Number(body.id), owner: user });
        } catch {
          // The listener is closed: new connections are refused once the signal came.
          if (!signalled) serverErrors.push('connection failed before SIGTERM');
          refusedAfterSignal++;
          return;
        }
      }
    };
    const load = Promise.all(users.map(save));
    await new Promise((r) => setTimeout(r, 3000));
    signalled = true;
    const exitCode = await service.kill('SIGTERM');
    await load;

    expect(exitCode).toBe(0);
    expect(serverErrors).toEqual([]);
    expect(created.length).toBeGreaterThan(users.length);
    expect(refusedAfterSignal).toBe(users.length);

    // Every answered save is stored whole: the image, its sealed credential and its audit entry; nothing else is.
    const db = openDatabase(databaseUrl);
    try {
      const images = (await db('images').select('id', 'owner')) as Array<{ id: number; owner: string }>;
      expect(images.map((i) => `${i.owner}/${i.id}`).sort()).toEqual(created.map((c) => `${c.owner}/${c.id}`).sort());
      const credentials = (await db('credentials').select('image_id', 'owner', 'username')) as Array<{
        image_id: number;
        owner: string;
        username: string;
      }>;
      expect(credentials.map((c) => `${c.owner}/${c.image_id}/${c.username}`).sort()).toEqual(
        created.map((c) => `${c.owner}/${c.id}/${c.owner}`).sort(),
      );
      const audited = (await db('audit').where({ action: 'image.create' }).select('target_id')) as Array<{ target_id: string }>;
      expect(audited.map((a) => Number(a.target_id)).sort((a, b) => a - b)).toEqual(created.map((c) => c.id).sort((a, b) => a - b));
    } finally {
      await db.destroy();
    }
    expect(service.log()).toMatch(/"msg":"stopped"/);
  }, 90_000);
});
