/**
 * A launch through a link, seen through two replicas of the service on one
 * database (SQLite and PostgreSQL): the POST reaches one replica, which runs
 * the launch; the progress page's requests reach either, and both show the
 * same step. A replica that stops in the middle of a launch leaves it
 * shown as ended, in words, and the visitor may open a link again; a launch
 * taken for ended while its replica still ran it (a clock ahead, a stalled
 * call) never writes over the newer one, nor starts the server. The
 * launch's build queue and the hub are the test's, answering when the test
 * says (building and starting are tested end to end in test/e2e/links).
 */
import { describe, expect, it } from 'vitest';
import { LinkLaunchStore } from '../../server/links/launchStore.js';
import { LinkService } from '../../server/links/service.js';
import { LinkStore } from '../../server/links/store.js';
import { createLogger } from '../../server/log.js';
import type { Knex } from '../../server/store/db.js';
import { migratedDatabase, type Engine } from '../support/database.js';
import { testAccess, testUser } from '../support/identities.js';
import { testSystem } from '../support/systems.js';

const COMMIT = 'e'.repeat(40);
const system = testSystem({
  slug: 'dock',
  build: { enabled: true, pushTo: 'registry.example.org/built', network: 'none', baseImages: [] },
});
const ada = testUser('ada');
const link = (repo: string) => ({ repo, ref: 'main', system: 'dock', urlpath: 'lab/tree/paper.ipynb' });

/** What the test's build queue and hub answer; the test moves them on. */
interface World {
  build: 'queued' | 'running' | 'succeeded';
  server: 'none' | 'pending' | 'ready';
  /** The image of each start the hub was asked for. */
  started: number[];
  /** The last image a build was queued for. */
  images: number;
}

/** One replica of the service: its own LinkService, on the shared database, with its own clock. */
function replica(db: Knex, world: World, clock: { now: Date } = { now: new Date() }) {
  return new LinkService({
    store: new LinkStore(db),
    launches: new LinkLaunchStore(db),
    access: testAccess,
    systems: { listEnabled: async () => [system] },
    git: { resolveCommit: async () => COMMIT },
    builds: {
      create: async () => ({ image: { id: ++world.images }, build: { number: 1 } }) as never,
      rebuild: async () => ({ number: 2 }) as never,
      get: async () => ({ build: { status: world.build } }) as never,
    },
    images: { load: async () => ({ status: { code: 'passed', label: 'Ready to start' } }) as never },
    hub: {
      serverState: async () => ({ state: world.server }) as never,
      startServer: async (_owner, options) => {
        world.started.push(Number(options.custom_images_image_id));
        world.server = 'pending';
      },
      stopServer: async () => {},
    },
    hubBaseUrl: '/',
    logger: createLogger('silent'),
    gitTimeoutMs: 1000,
    buildTimeoutMs: 60_000,
    pollMs: 10,
    now: () => clock.now,
  });
}

/** Waits until `check` holds (a launch runs in the background of the replica that took it). */
async function eventually(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the launch did not get there');
}

describe.each<Engine>(['SQLite', 'PostgreSQL'])('a launch through a link, two replicas on %s', (engine) => {
  it('is followed through either replica: both show each step, and where it lands', async () => {
    const db = await migratedDatabase(engine);
    try {
      const world: World = { build: 'queued', server: 'none', started: [], images: 6 };
      const [a, b] = [replica(db, world), replica(db, world)];
      expect(await b.current(ada)).toBeUndefined();
      const opened = await a.open(ada, link('https://github.com/lab/paper'), { stopRunning: false });
      expect(opened).toMatchObject({ step: 'building', buildNumber: 1, imageId: 7 });

      // The progress page's next request reaches the other replica.
      expect(await b.current(ada)).toMatchObject({ step: 'building', repo: 'https://github.com/lab/paper', commit: COMMIT });
      // Opening the same link again through it is the same launch, not a second one.
      expect(await b.open(ada, link('https://github.com/lab/paper'), { stopRunning: false })).toMatchObject({ step: 'building' });
      // Another repository while this one is opened: refused in words.
      await expect(b.open(ada, link('https://github.com/lab/other'), { stopRunning: false })).rejects.toThrow(
        /A link is being opened for you already \(https:\/\/github\.com\/lab\/paper\)/,
      );

      world.build = 'succeeded';
      await eventually(async () => (await b.current(ada))?.step === 'starting');
      world.server = 'ready';
      await eventually(async () => (await b.current(ada))?.step === 'ready');
      expect(await b.current(ada)).toMatchObject({ step: 'ready', landing: '/user/ada/lab/tree/paper.ipynb', message: null });
      expect(await a.current(ada)).toEqual(await b.current(ada));
      expect(world.started).toEqual([7]);
    } finally {
      await db.destroy();
    }
  });

  it('ends, in words, when the replica running it stopped; a link can be opened again', async () => {
    const db = await migratedDatabase(engine);
    try {
      const world: World = { build: 'queued', server: 'none', started: [], images: 6 };
      const later = { now: new Date() };
      const a = replica(db, world);
      const b = replica(db, world, later);
      await a.open(ada, link('https://github.com/lab/paper'), { stopRunning: false });
      // The replica that ran it is gone: no beat for longer than a live one ever waits between two.
      later.now = new Date(Date.now() + 31_000);
      const seen = await b.current(ada);
      expect(seen).toMatchObject({ step: 'failed', repo: 'https://github.com/lab/paper' });
      expect(seen?.message).toMatch(/The service stopped while it was opening this link: open the link again/);
      const again = await b.open(ada, link('https://github.com/lab/other'), { stopRunning: false });
      expect(again).toMatchObject({ step: 'building', repo: 'https://github.com/lab/other' });
    } finally {
      await db.destroy();
    }
  });

  it('taken for ended while its replica still runs it: writes nothing over the newer launch, and starts nothing', async () => {
    const db = await migratedDatabase(engine);
    try {
      const world: World = { build: 'queued', server: 'none', started: [], images: 6 };
      const a = replica(db, world);
      // b's clock is 31 s ahead of a's (or a's last beat was that long ago): a's launch looks ended to b.
      const b = replica(db, world, { now: new Date(Date.now() + 31_000) });
      const old = await a.open(ada, link('https://github.com/lab/paper'), { stopRunning: false });
      expect((await b.current(ada))?.step).toBe('failed');
      const newer = await b.open(ada, { ...link('https://github.com/lab/other'), urlpath: 'lab/tree/other.ipynb' }, { stopRunning: false });
      expect(newer).toMatchObject({ repo: 'https://github.com/lab/other', imageId: old.imageId + 1 });

      world.build = 'succeeded';
      await eventually(async () => world.started.length >= 1);
      world.server = 'ready';
      await eventually(async () => (await b.current(ada))?.step === 'ready');
      // Both launches polled the build and the hub meanwhile; only the newer one acted and wrote.
      await new Promise((r) => setTimeout(r, 200));
      expect(world.started).toEqual([newer.imageId]);
      expect(await b.current(ada)).toMatchObject({ repo: 'https://github.com/lab/other', landing: '/user/ada/lab/tree/other.ipynb' });
    } finally {
      await db.destroy();
    }
  });
});
