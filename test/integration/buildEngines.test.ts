/**
 * Builds on a site where no replica has a Docker engine (issue #22): every
 * replica says in `replicas` whether it can build; a build request to a
 * replica without an engine is refused in words when no replica that can
 * build is alive (503, nothing stored), and a queued build that waited
 * longer than the bound while none was is ended in words, freeing its
 * owner's queue slot. On SQLite and PostgreSQL, with the build service and
 * worker as the app wires them, without a builder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkDir } from '../../server/workDir.js';
import { BuildService } from '../../server/builds/service.js';
import { BUILD_JOB } from '../../server/builds/job.js';
import { BuildStore } from '../../server/builds/store.js';
import { activeJobsOf } from '../../server/jobs/queuedJobs.js';
import { BUILD_ENGINE_WAIT_MS, BuildWorker, noEngineMessage } from '../../server/builds/worker.js';
import { GitFetcher } from '../../server/builds/git.js';
import { AppError } from '../../server/errors.js';
import { ImageStore } from '../../server/images/store.js';
import { REPLICA_LIVE_MS, ReplicaStore } from '../../server/jobs/replicas.js';
import { createLogger } from '../../server/log.js';
import { RegistryClient } from '../../server/registry/client.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import type { Knex } from '../../server/store/db.js';
import { staticCatalog } from '../../server/systems/schema.js';
import { checkServices } from '../support/checkServices.js';
import { migratedDatabase, type Engine } from '../support/database.js';
import { testAccess, testUser } from '../support/identities.js';
import { testSystem } from '../support/systems.js';

const ada = testUser('ada');
const MINUTE = 60_000;
const system = testSystem({
  allowedRegistries: ['registry.example.org/*'],
  build: {
    enabled: true,
    pushTo: 'registry.example.org/built',
    network: 'none',
    baseImages: [{ name: 'Base', image: 'registry.example.org/base:1' }],
  },
});
const request = (name: string) => ({ name, system: 'default', mode: 'packages', base: 'Base', pip: 'xarray==2024.3.0' });

/** The build service of a replica without an engine, at the clock `now`. */
async function engineless(db: Knex, now: () => Date = () => new Date()): Promise<BuildService> {
  const keyring = await createKeyring([new Uint8Array(32).fill(4)]);
  const registry = new RegistryClient({ trustedHosts: [] });
  const workDir = WorkDir.open(fs.mkdtempSync(path.join(os.tmpdir(), 'ci-engineless-work-')));
  const { images } = checkServices(db, { registry, keyring, systems: [system] });
  return new BuildService({
    store: new BuildStore(db),
    images,
    imageStore: new ImageStore(db),
    systems: { ...staticCatalog([system]), credentialFor: async () => undefined, builtImageProblem: async () => undefined },
    access: testAccess,
    keyring,
    registry,
    git: new GitFetcher({
      trustedHosts: [],
      maxBytes: 1024 * 1024,
      checkout: { maxBytes: 1024 * 1024, maxFiles: 100, maxObjectBytes: 1024 * 1024 },
      workDir,
      timeoutMs: 10_000,
    }),
    builder: undefined,
    check: async () => undefined,
    limits: { dockerfileBytes: 64 * 1024, uploadBytes: 1024 * 1024, uploadFiles: 20, contextBytes: 1024 * 1024 },
    workDir,
    builderLimits: {
      memoryBytes: 1024 * 1024 * 1024,
      cpus: 1,
      timeoutMs: 60_000,
      cgroupParent: undefined,
      diskBytes: 20e9,
      imageBytes: 32e9,
    },
    maxQueuedPerUser: 10,
    maxStreamsPerUser: 4,
    replicas: new ReplicaStore(db),
    logger: createLogger('silent'),
    now,
  });
}

/** A worker of a replica without an engine, as the app starts it; `until` is polled until it holds, then the worker stops. */
async function runEnginelessWorker(db: Knex, builds: BuildService, until: () => Promise<boolean>): Promise<void> {
  const worker = new BuildWorker({
    db,
    store: new BuildStore(db),
    builds,
    canBuild: false,
    replicas: new ReplicaStore(db),
    logger: createLogger('silent'),
    concurrency: 1,
    pollMs: 50,
  });
  worker.start();
  try {
    for (let i = 0; i < 400 && !(await until()); i++) await new Promise((r) => setTimeout(r, 50));
  } finally {
    // Waits for the tick in hand: its heartbeat and its look at the queue are done.
    await worker.stop();
  }
}

const counts = async (db: Knex) => ({
  images: Number(((await db('images').count({ n: '*' })) as Array<{ n: number | string }>)[0]?.n),
  builds: Number(((await db('builds').count({ n: '*' })) as Array<{ n: number | string }>)[0]?.n),
});

describe.each<Engine>(['SQLite', 'PostgreSQL'])('builds without an engine, on %s', (engine) => {
  it('a request is refused in words, nothing stored, while no replica that can build is alive', async () => {
    const db = await migratedDatabase(engine);
    const builds = await engineless(db);
    const replicas = new ReplicaStore(db);
    // Another replica without an engine is alive: no help.
    await replicas.beat('web-1', false, new Date());
    const refused = await builds.create(ada, 'ada', request('first'), []).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).status).toBe(503);
    expect((refused as AppError).message).toMatch(/^This site has no build engine running .* nothing was queued/);
    expect(await counts(db)).toEqual({ images: 0, builds: 0 });

    // A replica with an engine beats: the request is queued.
    await replicas.beat('builder-1', true, new Date());
    const { build } = await builds.create(ada, 'ada', request('second'), []);
    expect(build.status).toBe('queued');

    // It stopped beating (killed) longer ago than a replica is taken to be alive: refused again.
    await replicas.beat('builder-1', true, new Date(Date.now() - REPLICA_LIVE_MS - 1000));
    await expect(builds.rebuild(ada, 'ada', build.imageId, undefined, [])).rejects.toMatchObject({ status: 503 });
    // It came back, and then stopped, saying so.
    await replicas.beat('builder-1', true, new Date());
    expect((await builds.rebuild(ada, 'ada', build.imageId, undefined, [])).status).toBe('queued');
    await replicas.leave('builder-1');
    await expect(builds.create(ada, 'ada', request('third'), [])).rejects.toMatchObject({ status: 503 });
    expect(await counts(db)).toEqual({ images: 1, builds: 2 });
  });

  it('a build that waited longer than the bound with no replica that can build ends in words, and frees its slot', async () => {
    const db = await migratedDatabase(engine);
    const replicas = new ReplicaStore(db);
    const store = new BuildStore(db);
    // Queued an hour ago, while a replica with an engine was alive; it has not beaten since.
    const hourAgo = new Date(Date.now() - 60 * MINUTE);
    await replicas.beat('builder-1', true, hourAgo);
    const old = await (await engineless(db, () => hourAgo)).create(ada, 'ada', request('waited'), []);
    expect(await activeJobsOf(db, BUILD_JOB, 'ada')).toBe(1);

    const builds = await engineless(db);
    await runEnginelessWorker(db, builds, async () => (await store.get(old.build.id))?.status !== 'queued');
    const ended = await store.get(old.build.id);
    expect(ended).toMatchObject({ status: 'failed', message: noEngineMessage(BUILD_ENGINE_WAIT_MS), attempts: 0 });
    expect(ended?.message).toMatch(/No build engine of this site ran for 10 minutes/);
    expect(ended?.finishedAt).not.toBeNull();
    // The owner's slot is free again.
    expect(await activeJobsOf(db, BUILD_JOB, 'ada')).toBe(0);
  });

  it('a queued build keeps waiting while a replica that can build is alive, or for the bound after the last one went', async () => {
    const db = await migratedDatabase(engine);
    const replicas = new ReplicaStore(db);
    const store = new BuildStore(db);
    const hourAgo = new Date(Date.now() - 60 * MINUTE);
    await replicas.beat('builder-1', true, hourAgo);
    const waiting = await (await engineless(db, () => hourAgo)).create(ada, 'ada', request('waiting'), []);
    const builds = await engineless(db);
    const workerRow = async () => (await db('replicas').where({ can_build: false })).length > 0;

    // The builder is alive (busy with other builds, say): the build waits.
    await replicas.beat('builder-1', true, new Date());
    await runEnginelessWorker(db, builds, workerRow);
    expect((await store.get(waiting.build.id))?.status).toBe('queued');

    // The builder went a minute ago (a restart, not yet back): the build still waits.
    await replicas.beat('builder-1', true, new Date(Date.now() - MINUTE));
    await runEnginelessWorker(db, builds, workerRow);
    expect((await store.get(waiting.build.id))?.status).toBe('queued');

    // A build queued a minute ago, on a site that never had an engine, waits for the bound too.
    await db('replicas').delete();
    await db('builds')
      .where({ id: waiting.build.id })
      .update({ created_at: new Date(Date.now() - MINUTE) });
    await runEnginelessWorker(db, builds, workerRow);
    expect((await store.get(waiting.build.id))?.status).toBe('queued');
  });

  it('each replica beats while it runs and leaves the table when it stops', async () => {
    const db = await migratedDatabase(engine);
    const builds = await engineless(db);
    const replicas = new ReplicaStore(db);
    // A replica that stopped without a word two days ago.
    await replicas.beat('crashed', true, new Date(Date.now() - 48 * 60 * MINUTE));
    let seen: Array<Record<string, unknown>> = [];
    await runEnginelessWorker(db, builds, async () => {
      seen = (await db('replicas').select('id', 'can_build')) as Array<Record<string, unknown>>;
      return seen.length === 1 && seen[0]?.id !== 'crashed';
    });
    expect(seen).toEqual([{ id: expect.stringMatching(/:\d+:[0-9a-f]{6}$/), can_build: engine === 'SQLite' ? 0 : false }]);
    expect(await db('replicas')).toEqual([]);
  });
});
