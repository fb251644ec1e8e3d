/**
 * The run check with a real Docker engine and a real registry: a minimal
 * Debian with Debian's jupyterhub package (built by .ci/debian-image and
 * cached outside the repository), and images derived from it that exit
 * non-zero, sleep or fork without end. Then the service's own life: the
 * engine stopped during a check, the service killed during a check.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckService } from '../../server/checks/service.js';
import type { CheckStore } from '../../server/checks/store.js';
import type { ImageService } from '../../server/images/service.js';
import { RegistryClient } from '../../server/registry/client.js';
import { DockerEngine, dockerFromHost } from '../../server/runner/engine.js';
import { removeOrphanContainers } from '../../server/runner/orphans.js';
import { CHECK_ID_LABEL, CHECK_LABEL, DEPLOYMENT_LABEL } from '../../server/runner/runCheck.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import type { System } from '../../server/systems/schema.js';
import { checkServices, type CheckServices } from '../support/checkServices.js';
import { testUser } from '../support/identities.js';
import { testSystem } from '../support/systems.js';
import { checkContainers, ciDocker, startPrivateDockerd } from '../support/docker.js';
import { pushImage, type ImageSpec } from '../support/images.js';
import { PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';
import { queueCheck, startService, waitForStatus } from '../support/service.js';

const LAYER = process.env.TEST_DEBIAN_JUPYTERHUB_LAYER;
// Short, for the images that are meant to hit it; real images get the generous limit, because
// a Python start-up on a cold, freshly pulled image on a busy 2-core CI machine can take 10 s.
const TIMEOUT_S = 8;
const REAL_IMAGE_TIMEOUT_S = 60;
let registries: TestRegistries;
let docker: Docker;
let db: Knex;
let dir: string;
let images: ImageService;
let checks: CheckService;
let quickChecks: CheckService;
/** A replica without a Docker engine. */
let engineless: CheckService;
let store: CheckStore;
let services: CheckServices;
const ada = testUser('ada');

const system: System = testSystem();

const script = (body: string) => ({ '/usr/bin/jupyterhub-singleuser': { content: `#!/bin/sh\n${body}\n`, mode: 0o755 } });

beforeAll(async () => {
  if (!LAYER || !fs.existsSync(LAYER))
    throw new Error('TEST_DEBIAN_JUPYTERHUB_LAYER is not set: run the tests through .ci/run (.ci/debian-image builds the image)');
  docker = ciDocker();
  registries = await startRegistries();
  const debian: ImageSpec = { layers: [{ path: LAYER }] };
  await pushImage(registries.open, 'run/debian', '1', debian);
  await pushImage(registries.open, 'private/debian', '1', debian);
  await pushImage(registries.open, 'run/exits', '1', {
    layers: [...debian.layers, { files: script('echo "ImportError: No module named jupyterhub.singleuser" >&2\nexit 3') }],
  });
  await pushImage(registries.open, 'run/sleeps', '1', { layers: [...debian.layers, { files: script('exec sleep 100000') }] });
  await pushImage(registries.open, 'run/forks', '1', { layers: [...debian.layers, { files: script('f() { f | f & }\nf\nwait') }] });
  // Fills its VOLUME /data with 200 MB, then answers as jupyterhub-singleuser would.
  await pushImage(registries.open, 'run/fills', '1', {
    layers: [...debian.layers, { files: script('dd if=/dev/zero of=/data/fill bs=1M count=200 2>&1 | head -1\necho 3.0.0') }],
    volumes: ['/data'],
  });

  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-run-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  const keyring = await createKeyring([new Uint8Array(32).fill(7)]);
  services = checkServices(db, { registry: new RegistryClient({ trustedHosts: registries.trusted }), keyring, systems: [system] });
  ({ store, images } = services);
  const service = (timeoutS: number, withEngine = true) =>
    services.checks({
      engine: withEngine ? new DockerEngine(dockerFromHost(process.env.DOCKER_HOST)) : undefined,
      deadlineMs: 600_000,
      runLimits: { timeoutMs: timeoutS * 1000, memoryBytes: 512 * 1024 * 1024, pids: 64, outputBytes: 16 * 1024 },
    });
  checks = service(REAL_IMAGE_TIMEOUT_S);
  quickChecks = service(TIMEOUT_S);
  engineless = service(TIMEOUT_S, false);
}, 300_000);

afterAll(async () => {
  await db?.destroy();
  await registries?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Saves an image and runs its check job to the end, as a worker would. */
async function check(image: string, credentials?: { username: string; password: string }, service: CheckService = checks) {
  const saved = await images.create(ada, 'ada', {
    system: 'default',
    image,
    ...(credentials ? { registry: image.split('/')[0], username: credentials.username, password: credentials.password } : {}),
  });
  const job = await service.request(ada, 'ada', saved.id);
  expect(job.kind).toBe('full');
  return services.run(service, job.id);
}

describe('the run check', { timeout: 180_000 }, () => {
  it('passes an image with a real jupyterhub-singleuser; the log holds the version line', async () => {
    const result = await check(`${registries.open}/run/debian:1`);
    if (result.status !== 'passed') console.log(result.log, result.findings);
    expect(result.status).toBe('passed');
    expect(result.findings.find((f) => f.code === 'run.version')?.message).toContain('jupyterhub-singleuser 3.0.0');
    expect(result.log).toMatch(/^\| 3\.0\.0$/m);
    expect(result.facts?.singleuser?.path).toBe('/usr/bin/jupyterhub-singleuser');
    expect(await checkContainers(docker)).toEqual([]);
    // Pulled only for the check: removed again.
    const pinned = `${registries.open}/run/debian@${result.manifestDigest}`;
    expect(await new DockerEngine(docker).hasImage(pinned)).toBe(false);
  });

  it('fails an image whose singleuser exits non-zero, showing its output', async () => {
    const result = await check(`${registries.open}/run/exits:1`);
    if (result.status !== 'failed') console.log(result.log, result.findings);
    expect(result.status).toBe('failed');
    const finding = result.findings.find((f) => f.code === 'run.exit_code');
    expect(finding?.message).toMatch(/exited with code 3/);
    expect(finding?.message).toContain('ImportError: No module named jupyterhub.singleuser');
  });

  it('kills an image that sleeps forever at the time limit and leaves no container', async () => {
    const result = await check(`${registries.open}/run/sleeps:1`, undefined, quickChecks);
    if (result.status !== 'failed') console.log(result.log, result.findings);
    expect(result.status).toBe('failed');
    expect(result.findings.find((f) => f.code === 'run.timeout')?.message).toMatch(new RegExp(`within ${TIMEOUT_S} s`));
    // Killed by the check at its limit, not ended by itself: what happened, not how long the machine took.
    expect(result.log).toMatch(/^Exit code 137 \(killed at the time limit\)$/m);
    expect(await checkContainers(docker)).toEqual([]);
  });

  it('stops an image that forks without end (pids limit) and leaves no container', async () => {
    const result = await check(`${registries.open}/run/forks:1`, undefined, quickChecks);
    expect(result.status).toBe('failed');
    expect(result.findings.some((f) => f.level === 'error' && f.code.startsWith('run.'))).toBe(true);
    expect(await checkContainers(docker)).toEqual([]);
    // The host is fine: the engine still answers.
    await docker.ping();
  });

  it('records the kind of check that ran: a replica without an engine makes a static one, though a full one was asked', async () => {
    // An image of its own: no earlier result of the same digest is reused.
    await pushImage(registries.open, 'run/engineless', '1', { layers: [{ path: LAYER! }, { files: { '/etc/engineless': 'yes' } }] });
    const saved = await images.create(ada, 'ada', { system: 'default', image: `${registries.open}/run/engineless:1` });
    const job = await checks.request(ada, 'ada', saved.id);
    expect(job.kind).toBe('full');
    const row = await services.run(engineless, job.id, 'engineless');
    expect(row).toMatchObject({ status: 'passed', kind: 'static' });
    expect(row.findings.map((f) => f.code)).toContain('run.skipped');
  });

  it("gives an image's VOLUME a small tmpfs instead of the host's disk, and leaves no volume behind", async () => {
    const volumes = async () => ((await docker.listVolumes()).Volumes ?? []).map((v) => v.Name).sort();
    const before = await volumes();
    const result = await check(`${registries.open}/run/fills:1`);
    expect(result.log).toMatch(/No space left on device/);
    expect(result.status).toBe('passed');
    expect(await volumes()).toEqual(before);
    expect(await checkContainers(docker)).toEqual([]);
  });

  it("sweeps its own deployment's orphaned containers and leaves another deployment's on the same engine alone", async () => {
    const image = `${registries.open}/run/sleeps:1`;
    await new DockerEngine(docker).pull(image, undefined);
    // Job 999999 is in neither database: to each deployment, a container of a job that no longer runs.
    const create = (deployment: string) =>
      docker.createContainer({
        Image: image,
        Cmd: ['true'],
        Labels: { [CHECK_LABEL]: 'true', [CHECK_ID_LABEL]: '999999', [DEPLOYMENT_LABEL]: deployment },
      });
    const ours = await create(await store.deploymentId());
    const theirs = await create('another-deployment');
    try {
      const running = async (id: number) => (await store.get(id))?.status === 'running';
      expect(await removeOrphanContainers(new DockerEngine(docker), await store.deploymentId(), running)).toBe(1);
      const left = await checkContainers(docker);
      expect(left).toContain(theirs.id);
      expect(left).not.toContain(ours.id);
    } finally {
      await theirs.remove({ force: true }).catch(() => undefined);
      await ours.remove({ force: true }).catch(() => undefined);
      await docker
        .getImage(image)
        .remove({ force: true })
        .catch(() => undefined);
    }
  });

  it('pulls a private image with the user credentials, and fails clearly with wrong ones', async () => {
    const ok = await check(`${registries.basic}/private/debian:1`, { username: USER, password: PASSWORD });
    expect(ok.status).toBe('passed');
    const wrong = await check(`${registries.basic}/private/debian:1`, { username: USER, password: 'not-the-password' });
    expect(wrong.status).toBe('error');
    expect(wrong.findings[0]).toMatchObject({
      code: 'registry.unauthorized',
      message: expect.stringMatching(/refused the username and password/),
    });
    expect(JSON.stringify(wrong)).not.toContain('not-the-password');
  });
});

/** Waits until a check container runs on `engine`. */
async function untilContainerRuns(engine: Docker, log: () => string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while ((await engine.listContainers({ filters: { label: ['custom-images.check=true'], status: ['running'] } })).length === 0) {
    if (Date.now() > deadline) throw new Error(`the check never started the image: ${log().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('the service around a check', { timeout: 240_000 }, () => {
  it('ends the job in error when the engine stops during a check, and keeps serving', async () => {
    const engine = await startPrivateDockerd();
    const serviceDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-svc-'));
    const url = `sqlite://${serviceDir}/db.sqlite`;
    const service = await startService({
      CUSTOM_IMAGES_DATABASE_URL: url,
      DOCKER_HOST: engine.host,
      CUSTOM_IMAGES_RUN_TIMEOUT_SECONDS: '120',
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    });
    const serviceDb = openDatabase(url);
    try {
      const id = await queueCheck(serviceDb, 'ada', `${registries.open}/run/sleeps:1`, 'full');
      // Wait until the image runs, then stop the engine under it.
      await untilContainerRuns(new (await import('dockerode')).default({ socketPath: engine.host.replace('unix://', '') }), () =>
        service.log(),
      );
      await new Promise((r) => setTimeout(r, 500));
      await engine.kill();
      const row = await waitForStatus(serviceDb, id, (s) => s !== 'queued' && s !== 'running', 60_000);
      expect(row.status).toBe('error');
      expect(String(row.findings)).toMatch(/run\.engine|Docker engine/);
      expect((await fetch(`${service.url}healthz`)).status).toBe(200);
      expect(service.proc.exitCode).toBeNull();
    } finally {
      await serviceDb.destroy();
      await service.kill();
      await engine.kill();
    }
  });

  it('does not leave a job running when the service is killed during it and started again', async () => {
    const serviceDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-svc-'));
    const url = `sqlite://${serviceDir}/db.sqlite`;
    const env = {
      CUSTOM_IMAGES_DATABASE_URL: url,
      CUSTOM_IMAGES_RUN_TIMEOUT_SECONDS: String(TIMEOUT_S),
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    };
    const first = await startService(env);
    const serviceDb = openDatabase(url);
    try {
      const id = await queueCheck(serviceDb, 'ada', `${registries.open}/run/sleeps:1`, 'full');
      await untilContainerRuns(docker, () => first.log());
      await first.kill('SIGKILL');
      expect(((await serviceDb('checks').where({ id }).first()) as { status: string }).status).toBe('running');

      const second = await startService(env);
      try {
        const row = await waitForStatus(serviceDb, id, (s) => s !== 'queued' && s !== 'running', 90_000).catch((err: unknown) => {
          throw new Error(`${String(err)}\n${second.log().slice(-3000)}`);
        });
        // Picked up again (and killed at its time limit), or given up as interrupted: never left running.
        expect(['failed', 'error']).toContain(row.status);
        expect(Number(row.attempts)).toBeGreaterThanOrEqual(2);
        // The container of the killed service was removed too.
        const sweepDeadline = Date.now() + 40_000;
        while ((await checkContainers(docker)).length > 0 && Date.now() < sweepDeadline) await new Promise((r) => setTimeout(r, 500));
        expect(await checkContainers(docker)).toEqual([]);
      } finally {
        await second.kill();
      }
    } finally {
      await serviceDb.destroy();
      await first.kill();
    }
  });
});
