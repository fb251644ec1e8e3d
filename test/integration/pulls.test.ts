/**
 * Images kept in the Docker engine for launches, with a real engine and a
 * real registry behind a slow link: a passed image is pulled in the
 * background with its progress stored, by one of two replicas on one engine,
 * a launch pulls what is missing, and the clean-up removes what no launch
 * used for the configured days unless a container uses it.
 */
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../server/log.js';
import { PullService, type PullTarget } from '../../server/pulls/service.js';
import type { StartReadiness } from '../../server/images/service.js';
import { EngineImageStore } from '../../server/pulls/store.js';
import { PullWorker } from '../../server/pulls/worker.js';
import { RegistryClient } from '../../server/registry/client.js';
import { parseReference, pinnedImage } from '../../server/registry/reference.js';
import { DockerEngine } from '../../server/runner/engine.js';
import type { Knex } from '../../server/store/db.js';
import { migratedDatabase, type Engine } from '../support/database.js';
import { ciDocker, removeImagesFrom } from '../support/docker.js';
import { pushImage } from '../support/images.js';
import { startRegistries, throttledProxy, type TestRegistries } from '../support/registry.js';

const DAY = 86_400_000;
let registries: TestRegistries;
let slow: Awaited<ReturnType<typeof throttledProxy>>;
let docker: Docker;
let engine: DockerEngine;
/** The service's registry rules, trusting the slow link. */
let guard: RegistryClient;

beforeAll(async () => {
  docker = ciDocker();
  engine = new DockerEngine(docker);
  registries = await startRegistries();
  // About 3 s of download at 2 MB/s: long enough to see the pull's progress.
  slow = await throttledProxy(registries.open, 2_000_000);
  guard = new RegistryClient({ trustedHosts: [slow.host] });
}, 60_000);

afterAll(async () => {
  await slow?.stop();
  await registries?.stop();
  if (slow) await removeImagesFrom([slow.host]);
});

/** A small image of its own (random content, so that no layer is in the engine already); its pinned name via the slow link. */
async function freshImage(repo: string, megabytes = 0): Promise<PullTarget & { image: string }> {
  const files: Record<string, string | { content: Buffer }> = { '/etc/marker': randomBytes(8).toString('hex') };
  if (megabytes > 0) files['/data/blob'] = { content: randomBytes(megabytes * 1_000_000) };
  const { digest } = await pushImage(registries.open, repo, '1', { layers: [{ files, compression: 'none' }] });
  const reference = parseReference(`${slow.host}/${repo}:1`);
  const image = pinnedImage(reference, digest);
  return { owner: 'ada', imageId: 1, reference, digest, image };
}

function parts(db: Knex, options: { keepDays?: number; now?: () => Date; budgetBytes?: number; logger?: Logger } = {}) {
  const store = new EngineImageStore(db);
  const worker = new PullWorker({
    db,
    store,
    engine,
    credentials: async () => undefined,
    mayPull: (registry) => guard.assertEngineMayPull(registry),
    logger: options.logger ?? createLogger('silent'),
    timeoutMs: 120_000,
    keepDays: options.keepDays ?? 14,
    budgetBytes: options.budgetBytes ?? 1e12,
    pollMs: 100,
    ...(options.now ? { now: options.now } : {}),
  });
  const service = new PullService({ store, engine, wake: () => worker.nudge() });
  return { store, worker, service };
}

/** Asks for `target` to be kept in the engine, and waits until its pull has ended. */
async function prePulled(service: PullService, target: PullTarget & { image: string }): Promise<StartReadiness | undefined> {
  await service.request(target);
  let state: StartReadiness | undefined;
  for (let i = 0; i < 600 && state?.state !== 'ready' && state?.state !== 'failed'; i++) {
    state = (await service.readiness([target.image])).get(target.image);
    await new Promise((r) => setTimeout(r, 100));
  }
  return state;
}

describe.each<Engine>(['SQLite', 'PostgreSQL'])('images kept in the engine (%s)', (kind) => {
  it(
    'pulls a passed image in the background once for two replicas, with its progress shown until it is ready',
    { timeout: 120_000 },
    async () => {
      const db = await migratedDatabase(kind);
      const target = await freshImage(`prepull/${kind.toLowerCase()}`, 6);
      const replicas = [parts(db), parts(db)];
      for (const r of replicas) r.worker.start();
      try {
        // Both replicas finish a check of it at the same moment.
        await Promise.all(replicas.map((r) => r.service.request(target)));
        const seen: StartReadiness[] = [];
        const deadline = Date.now() + 90_000;
        for (;;) {
          const state = (await replicas[0]!.service.readiness([target.image])).get(target.image);
          if (state) seen.push(state);
          if (state?.state === 'ready' || state?.state === 'failed' || Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(seen.at(-1)).toEqual({ state: 'ready' });
        const percents = seen.flatMap((s) => (s.state === 'preparing' && s.percent !== null ? [s.percent] : []));
        expect(percents.some((p) => p > 0 && p < 100)).toBe(true);
        expect(percents).toEqual([...percents].sort((a, b) => a - b));
        expect(await engine.hasImage(target.image)).toBe(true);
        // One pull: the engine asked the registry for the manifest once.
        expect(slow.requests.filter((r) => r === `GET /v2/${target.reference.repository}/manifests/${target.digest}`)).toHaveLength(1);
        const row = await replicas[0]!.store.get(await engine.id(), target.image);
        expect(row).toMatchObject({ status: 'ready', pulledByService: true, attempts: 1 });

        // Asked again (a second check of the same image): nothing is pulled again.
        await replicas[1]!.service.request(target);
        expect((await replicas[1]!.service.readiness([target.image])).get(target.image)).toEqual({ state: 'ready' });
      } finally {
        await Promise.all(replicas.map((r) => r.worker.stop()));
      }
    },
  );

  it('says in words why a pull failed, and pulls at a launch what is not in the engine', { timeout: 60_000 }, async () => {
    const db = await migratedDatabase(kind);
    const { service, worker, store } = parts(db);
    worker.start();
    try {
      const missing = { ...(await freshImage(`prepull/missing-${kind.toLowerCase()}`)), digest: `sha256:${'0'.repeat(64)}` };
      missing.image = pinnedImage(missing.reference, missing.digest);
      await service.request(missing);
      let state: StartReadiness | undefined;
      for (let i = 0; i < 200 && state?.state !== 'failed'; i++) {
        state = (await service.readiness([missing.image])).get(missing.image);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(state).toMatchObject({ state: 'failed', message: expect.stringMatching(/could not pull|not found|manifest unknown/i) });

      // A launch of an image that was never pre-pulled pulls it, and records it as used.
      const target = await freshImage(`prepull/launch-${kind.toLowerCase()}`);
      const started = new Date();
      expect(await service.forLaunch(target, () => engine.pull(target.image, undefined))).toEqual({ pulled: true });
      expect(await engine.hasImage(target.image)).toBe(true);
      const row = await store.get(await engine.id(), target.image);
      expect(row).toMatchObject({ status: 'ready', pulledByService: true });
      expect(row?.lastUsedAt?.getTime()).toBeGreaterThanOrEqual(started.getTime() - 1000);
      // The next launch finds it there.
      expect(await service.forLaunch(target, () => Promise.reject(new Error('must not pull')))).toEqual({ pulled: false });
    } finally {
      await worker.stop();
    }
  });

  it('stops a pull that takes longer than its time and says so', { timeout: 60_000 }, async () => {
    const db = await migratedDatabase(kind);
    const crawl = await throttledProxy(registries.open, 100_000);
    const store = new EngineImageStore(db);
    const worker = new PullWorker({
      db,
      store,
      engine,
      credentials: async () => undefined,
      mayPull: async () => undefined,
      logger: createLogger('silent'),
      timeoutMs: 1000,
      keepDays: 14,
      budgetBytes: 1e12,
      pollMs: 100,
    });
    const service = new PullService({ store, engine, wake: () => worker.nudge() });
    worker.start();
    try {
      const target = await freshImage(`prepull/crawl-${kind.toLowerCase()}`, 6);
      const viaCrawl = { ...target, reference: parseReference(`${crawl.host}/prepull/crawl-${kind.toLowerCase()}:1`) };
      const image = pinnedImage(viaCrawl.reference, target.digest);
      await service.request(viaCrawl);
      let state: StartReadiness | undefined;
      for (let i = 0; i < 300 && state?.state !== 'failed' && state?.state !== 'ready'; i++) {
        state = (await service.readiness([image])).get(image);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(state).toMatchObject({
        state: 'failed',
        message: expect.stringMatching(/did not finish pulling .* within 1 s; it was stopped/),
      });
      expect(await engine.hasImage(image)).toBe(false);
    } finally {
      await worker.stop();
      await crawl.stop();
      await removeImagesFrom([crawl.host]);
    }
  });

  it(
    'keeps pre-pulled images within the budget: the least recently started go first, never one a container uses, and what cannot fit is not kept',
    { timeout: 120_000 },
    async () => {
      const db = await migratedDatabase(kind);
      const lines: string[] = [];
      const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
      // Room for two of these images (3 MB each as the engine counts them), not three.
      const { service, store, worker } = parts(db, { budgetBytes: 7_500_000, logger });
      const [started, neverStarted, next, last] = await Promise.all(
        ['started', 'never-started', 'next', 'last'].map((name) => freshImage(`prepull/budget-${name}-${kind.toLowerCase()}`, 3)),
      );
      const holders: Docker.Container[] = [];
      worker.start();
      try {
        const engineId = await engine.id();
        expect(await prePulled(service, started!)).toEqual({ state: 'ready' });
        expect(await prePulled(service, neverStarted!)).toEqual({ state: 'ready' });
        await service.forLaunch(started!, () => Promise.reject(new Error('it is there')));

        // A third one: the image never started goes, the one started stays.
        expect(await prePulled(service, next!)).toEqual({ state: 'ready' });
        expect(await engine.hasImage(neverStarted!.image)).toBe(false);
        expect((await store.get(engineId, neverStarted!.image))?.status).toBe('removed');
        expect(await engine.hasImage(started!.image)).toBe(true);
        expect(await engine.hasImage(next!.image)).toBe(true);

        // Servers' containers use both kept images: a fourth one cannot fit, is not kept, and Start will pull it.
        for (const target of [started!, next!]) holders.push(await docker.createContainer({ Image: target.image, Cmd: ['true'] }));
        expect(await prePulled(service, last!)).toEqual({
          state: 'failed',
          message: "the Docker host's room for images kept ready (7.5 MB) is taken by images in use",
        });
        expect(await engine.hasImage(last!.image)).toBe(false);
        expect(await engine.hasImage(started!.image)).toBe(true);
        expect(await engine.hasImage(next!.image)).toBe(true);
        const skipped = lines.map((l) => JSON.parse(l) as { msg: string; image?: string }).find((l) => l.image === last!.image);
        expect(skipped?.msg).toMatch(/^pre-pull skipped: .* CUSTOM_IMAGES_PULLED_IMAGES_GB \(7\.5 MB\) .* Start will pull the image$/);
      } finally {
        await worker.stop();
        for (const holder of holders) await holder.remove({ force: true });
      }
    },
  );

  it(
    'removes an image no launch used for the configured days, and keeps one a container uses and one used lately',
    { timeout: 60_000 },
    async () => {
      const db = await migratedDatabase(kind);
      let now = new Date();
      const { service, store, worker } = parts(db, { keepDays: 14, now: () => now });
      const [unused, inUse, recent] = await Promise.all(
        ['unused', 'in-use', 'recent'].map((name) => freshImage(`prepull/${name}-${kind.toLowerCase()}`)),
      );
      for (const target of [unused!, inUse!, recent!]) await service.forLaunch(target, () => engine.pull(target.image, undefined));
      // A stopped container of a server still holds its image.
      const holder = await docker.createContainer({ Image: inUse!.image, Cmd: ['true'] });
      try {
        const engineId = await engine.id();
        const ago = (days: number) => new Date(now.getTime() - days * DAY);
        await db('engine_images')
          .where({ engine: engineId })
          .whereIn('image', [unused!.image, inUse!.image])
          .update({ last_used_at: ago(20) });
        await db('engine_images')
          .where({ engine: engineId, image: recent!.image })
          .update({ last_used_at: ago(3) });

        expect(await worker.cleanUp()).toEqual({ removed: [unused!.image], inUse: [inUse!.image] });
        expect(await engine.hasImage(unused!.image)).toBe(false);
        expect(await engine.hasImage(inUse!.image)).toBe(true);
        expect(await engine.hasImage(recent!.image)).toBe(true);
        expect((await store.get(engineId, unused!.image))?.status).toBe('removed');
        // Removed, it is pulled again when it is asked for.
        expect((await service.readiness([unused!.image])).get(unused!.image)).toBeUndefined();

        // Twelve days later the recent one's time has come too.
        now = new Date(now.getTime() + 12 * DAY);
        expect((await worker.cleanUp()).removed).toEqual([recent!.image]);
      } finally {
        await holder.remove({ force: true });
      }
    },
  );
});
