/**
 * What a build's repository may cost the service, measured on the service as
 * it runs (node dist/server/main.js, its own process, with a real Docker
 * engine, registry and git smart-HTTP server on loopback): repositories of a
 * few kilobytes whose checkout would be a gigabyte, one blob that inflates to
 * hundreds of megabytes, as much random data as the default limits allow,
 * thousands of files, and a context of 400 MB that must stream to the engine
 * from disk. Each fails in words naming its limit (or, within the limits,
 * builds), the process's peak resident memory (VmHWM) stays under 300 MiB
 * for the bombs and 384 MiB for the most the default limits let through (the
 * service alone, idle, holds about 125), and the work directory holds
 * nothing afterwards. The process has no usable /tmp (TMPDIR names a path under a
 * regular file), as in the documented read-only container.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BuildRow } from '../../server/builds/store.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { SystemStore } from '../../server/systems/store.js';
import type { System } from '../../server/systems/schema.js';
import { buildServices, type BuildServices } from '../support/builds.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { testUser } from '../support/identities.js';
import { pushImage } from '../support/images.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';
import { fanOutRepository, packBytes } from '../support/repositories.js';
import { startService, type ServiceProcess } from '../support/service.js';
import { buildStepsCgroup } from '../support/cgroup.js';
import { ciDocker } from '../support/docker.js';
import { testSystem } from '../support/systems.js';

const MiB = 1024 * 1024;
/**
 * The most the service process may hold at its peak while a build fetches and sends a repository:
 * the service itself (about 125 MiB idle), what its start left for V8 to collect (the build begins
 * right after it; up to about 50 MiB), and what a build at the default limits holds (about 150 MiB).
 * The bombs stay far below it; what they would cost unbounded is gigabytes.
 */
const RSS_LIMIT = 384 * MiB;
/** The bound for the bombs (a few kilobytes that would check out to a gigabyte): they hold nothing of the repository at once. */
const BOMB_RSS_LIMIT = 300 * MiB;

let registries: TestRegistries;
let git: GitServer;
let dir: string;
let workDir: string;
let db: Knex;
let services: BuildServices;
let system: System;
let service: ServiceProcess | undefined;
let count = 0;

beforeAll(async () => {
  registries = await startRegistries();
  git = await startGitServer();
  // A base of one small file: COPY needs no shell, and nothing big is pulled or pushed.
  await pushImage(registries.open, 'base/tiny', '1', { layers: [{ files: { '/etc/tiny': 'tiny\n' } }] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-bounds-'));
  workDir = path.join(dir, 'work');
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  system = testSystem({
    allowedRegistries: [`${registries.open}/*`],
    build: { enabled: true, pushTo: `${registries.open}/bounds`, network: 'none', baseImages: [] },
  });
  // Queued through the service's own code, then left to the service process to run.
  services = buildServices(db, {
    keyring: await createKeyring([new Uint8Array(32).fill(7)]),
    trustedRegistries: registries.trusted,
    trustedGitHosts: [git.host],
    systems: [system],
  });
  await new SystemStore(db).insert(system, new Date());
}, 120_000);

afterEach(async () => {
  await service?.kill('SIGTERM');
  service = undefined;
});

afterAll(async () => {
  await db?.destroy();
  await registries?.stop();
  await git?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The service process with the build limits of `env`, its temporary files under `workDir` and no usable /tmp. */
async function startBuilder(env: Record<string, string> = {}): Promise<ServiceProcess> {
  const blocked = path.join(dir, 'not-a-folder');
  fs.writeFileSync(blocked, '');
  service = await startService({
    CUSTOM_IMAGES_DATABASE_URL: `sqlite://${dir}/db.sqlite`,
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    CUSTOM_IMAGES_TRUSTED_GIT_HOSTS: git.host,
    CUSTOM_IMAGES_RUN_CHECKS: 'false',
    CUSTOM_IMAGES_WORK_DIR: workDir,
    DOCKER_HOST: process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock',
    TMPDIR: path.join(blocked, 'tmp'),
    // Building needs a limit on processes.
    CUSTOM_IMAGES_BUILD_CGROUP_PARENT: await buildStepsCgroup(ciDocker()),
    ...env,
  });
  return service;
}

/** Queues a build of `repo`'s own Dockerfile and waits until the service process has ended it. */
async function buildRepository(repo: string): Promise<BuildRow> {
  const { build } = await services.builds.create(
    testUser('ada'),
    'ada',
    { name: `bounds-${++count}`, system: system.slug, mode: 'dockerfile', gitUrl: `${git.origin}/${repo}` },
    [],
  );
  for (let i = 0; i < 1200; i++) {
    const row = (await services.store.get(build.id)) as BuildRow;
    if (row.status === 'succeeded' || row.status === 'failed') return row;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`build ${build.id} did not end:\n${service?.log() ?? ''}`);
}

/** The peak resident memory of a process so far (the kernel's high-water mark), in bytes. */
function peakRss(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]) * 1024;
}

/** Every file, folder and link under the work directory but the process's own folder. */
function leftovers(): string[] {
  const found: string[] = [];
  const walk = (folder: string, depth: number) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      // Depth 0 holds one folder per service process; what they hold is what a build left.
      if (depth === 0 && entry.isDirectory()) walk(full, 1);
      else found.push(path.relative(workDir, full));
    }
  };
  if (fs.existsSync(workDir)) walk(workDir, 0);
  return found;
}

const DOCKERFILE = () => `FROM ${registries.open}/base/tiny:1\nCOPY small.txt /small.txt\n`;

/** A repository of 400 MiB (one MiB of sevens, named 400 times) beside a Dockerfile that copies one small file. */
function largeContext(): string {
  fanOutRepository(git, 'large/context.git', {
    blob: Buffer.alloc(MiB, 7),
    width: 20,
    depth: 2,
    files: { Dockerfile: DOCKERFILE(), 'small.txt': 'from a large context\n' },
  });
  return 'large/context.git';
}

describe("a build's repository is bounded as written, in memory and on disk", { timeout: 300_000 }, () => {
  it('refuses a few kilobytes of pack that check out to 1 GiB, naming the limit, with little memory and nothing left', async () => {
    // One MiB of zeros, named 1024 times: the checkout would be 1 GiB.
    fanOutRepository(git, 'bombs/gigabyte.git', {
      blob: Buffer.alloc(MiB),
      width: 32,
      depth: 2,
      files: { Dockerfile: DOCKERFILE(), 'small.txt': 'small\n' },
    });
    expect(packBytes(git, 'bombs/gigabyte.git')).toBeLessThan(26 * 1024);
    const { proc } = await startBuilder();
    const done = await buildRepository('bombs/gigabyte.git');
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/The repository's checkout is larger than 512 MiB \(CUSTOM_IMAGES_BUILD_CHECKOUT_MAX_MB\)/);
    expect(peakRss(proc.pid!)).toBeLessThan(BOMB_RSS_LIMIT);
    expect(leftovers()).toEqual([]);
  });

  it('refuses one blob that inflates past the largest file a repository may hold, before inflating it', async () => {
    fanOutRepository(git, 'bombs/one-blob.git', {
      blob: Buffer.alloc(400 * MiB),
      width: 1,
      depth: 1,
      files: { Dockerfile: DOCKERFILE(), 'small.txt': 'small\n' },
    });
    expect(packBytes(git, 'bombs/one-blob.git')).toBeLessThan(1024 * 1024);
    const { proc } = await startBuilder();
    const done = await buildRepository('bombs/one-blob.git');
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/holds a file of 400 MiB; at most 16 MiB \(CUSTOM_IMAGES_BUILD_GIT_FILE_MAX_MB\)/);
    expect(peakRss(proc.pid!)).toBeLessThan(BOMB_RSS_LIMIT);
    expect(leftovers()).toEqual([]);
  });

  it('fetches what the default limits allow (32 MiB of pack that does not compress, in files of 16 MiB) within the bound, and refuses more', async () => {
    // The worst case for memory at the defaults: isomorphic-git holds the pack, and each file whole, several times over.
    const random = (files: number) => {
      const repo = `random/${files}.git`;
      const blobs = Array.from({ length: files }, () => crypto.randomBytes(Math.floor(15.9 * MiB)));
      const entries = blobs.map((blob, i) => `100644 blob ${git.git(repo, ['hash-object', '-w', '--stdin'], blob)}\tdata${i}.bin`);
      for (const [name, content] of Object.entries({ Dockerfile: DOCKERFILE(), 'small.txt': 'beside random data\n' }))
        entries.push(`100644 blob ${git.git(repo, ['hash-object', '-w', '--stdin'], content)}\t${name}`);
      git.git(repo, [
        'update-ref',
        'refs/heads/main',
        git.git(repo, ['commit-tree', git.git(repo, ['mktree'], `${entries.join('\n')}\n`), '-m', 'data']),
      ]);
      git.git(repo, ['symbolic-ref', 'HEAD', 'refs/heads/main']);
      return repo;
    };
    const within = random(2);
    expect(packBytes(git, within)).toBeGreaterThan(31 * MiB);
    const { proc } = await startBuilder();
    const done = await buildRepository(within);
    if (done.status !== 'succeeded') console.log(done.log, service?.log());
    expect(done.status).toBe('succeeded');
    expect(peakRss(proc.pid!)).toBeLessThan(RSS_LIMIT);
    expect(leftovers()).toEqual([]);

    const over = await buildRepository(random(3));
    expect(over.status).toBe('failed');
    expect(over.message).toMatch(/is larger than 32 MiB \(CUSTOM_IMAGES_BUILD_GIT_MAX_MB\)/);
    expect(peakRss(proc.pid!)).toBeLessThan(RSS_LIMIT);
    expect(leftovers()).toEqual([]);
  });

  it('refuses a checkout of more files than allowed, naming the limit', async () => {
    fanOutRepository(git, 'bombs/many-files.git', {
      blob: Buffer.from('x'),
      width: 64,
      depth: 2,
      files: { Dockerfile: DOCKERFILE(), 'small.txt': 'small\n' },
    });
    await startBuilder({ CUSTOM_IMAGES_BUILD_CHECKOUT_MAX_FILES: '1000' });
    const done = await buildRepository('bombs/many-files.git');
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/The repository's checkout has more than 1000 files \(CUSTOM_IMAGES_BUILD_CHECKOUT_MAX_FILES\)/);
    expect(leftovers()).toEqual([]);
  });

  it('streams a 400 MiB context to the engine from disk, without holding it, and builds', async () => {
    const { proc } = await startBuilder();
    const done = await buildRepository(largeContext());
    if (done.status !== 'succeeded') console.log(done.log, service?.log());
    expect(done.status).toBe('succeeded');
    expect(peakRss(proc.pid!)).toBeLessThan(RSS_LIMIT);
    expect(leftovers()).toEqual([]);
  });

  it('refuses a context over its limit before sending it, naming the limit', async () => {
    await startBuilder({ CUSTOM_IMAGES_BUILD_CONTEXT_MAX_MB: '64' });
    const done = await buildRepository(largeContext());
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/The build context is larger than 64 MiB \(CUSTOM_IMAGES_BUILD_CONTEXT_MAX_MB\)/);
    expect(leftovers()).toEqual([]);
  });
});
