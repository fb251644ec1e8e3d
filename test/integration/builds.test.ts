/**
 * Building images with a real Docker engine, a real registry on loopback and
 * a git smart-HTTP server on loopback: base image + a pip package from a
 * wheel in the context, a failing RUN, a build past its time, a build held to
 * the processes of a cgroup parent, a build without network, git contexts public and private, and requests that must be
 * refused before anything is stored or built.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import type { System } from '../../server/systems/schema.js';
import { buildServices, greetingWheel, type BuildServices, type UploadedWheel } from '../support/builds.js';
import type { BuildRow } from '../../server/builds/store.js';
import { pidsCgroup, type PidsCgroup } from '../support/cgroup.js';
import { ciDocker } from '../support/docker.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { testUser } from '../support/identities.js';
import { debianBuildBase } from '../support/buildRegistry.js';
import { layerTar } from '../support/images.js';
import { testSystem } from '../support/systems.js';
import { WorkDir } from '../../server/workDir.js';

/** The suite's build registry (test/support/buildRegistry.ts), and this file's folder of it: images are named under the folder. */
let registry: string;
let folder: string;
let git: GitServer;
let docker: Docker;
let db: Knex;
let dir: string;
let services: BuildServices;
let wheel: UploadedWheel;
/** The limit on processes every build needs (CUSTOM_IMAGES_BUILD_CGROUP_PARENT), as a host admin sets it up. */
let steps: PidsCgroup;
/** The base image's digest: builds pull their base images by the digest the service checked (builds/baseTriggers.ts). */
let baseDigest: string;
const ada = testUser('ada');

function buildSystem(overrides: Partial<System['build']> = {}, slug = 'default'): System {
  return testSystem({
    slug,
    displayName: slug === 'default' ? 'Default' : 'No network',
    allowedRegistries: [`${folder}/*`],
    build: {
      enabled: true,
      pushTo: `${folder}/built`,
      network: 'host',
      baseImages: [{ name: 'Debian with JupyterHub', image: `${folder}/base/debian:1` }],
      ...overrides,
    },
  });
}

/** Every image id in the engine, intermediate layers included. */
async function imageIds(): Promise<Set<string>> {
  return new Set((await docker.listImages({ all: true })).map((i) => i.Id));
}

/** What a build whose steps name `marker` left in the engine: images made since `before`, and containers. */
async function leftBehind(before: Set<string>, marker: string): Promise<{ layers: string[]; containers: string[] }> {
  const layers: string[] = [];
  for (const id of await imageIds()) {
    if (before.has(id)) continue;
    const history = (await docker
      .getImage(id)
      .history()
      .catch(() => [])) as Array<{ CreatedBy?: string }>;
    if (history.some((h) => String(h.CreatedBy ?? '').includes(marker))) layers.push(id);
  }
  const containers = (await docker.listContainers({ all: true })).filter((c) => c.Command.includes(marker)).map((c) => c.Id);
  return { layers, containers };
}

/** Whether the suite's registry holds `repository:tag`. */
async function registryHas(repository: string, tag: string): Promise<boolean> {
  const res = await fetch(`http://${registry}/v2/builds/${repository}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
  });
  return res.ok;
}

/** An image of the test's own, tagged as someone else's would be: one small layer, imported into the engine. */
async function someoneElsesImage(tag: string): Promise<string> {
  const layer = await layerTar({ '/etc/owner': `${tag} ${Date.now()}\n` });
  execFileSync('docker', ['import', '-', tag], { input: layer, stdio: ['pipe', 'ignore', 'inherit'] });
  return (await docker.getImage(tag).inspect()).Id;
}

/** The build services with other limits than the suite's: a time limit, a cgroup parent, a step's memory, disk and image size. */
async function servicesWith(limits: {
  timeoutMs?: number;
  cgroupParent?: string;
  memoryBytes?: number;
  diskBytes?: number;
  imageBytes?: number;
}): Promise<BuildServices> {
  return buildServices(db, {
    keyring: await createKeyring([new Uint8Array(32).fill(9)]),
    trustedRegistries: [registry],
    trustedGitHosts: [],
    systems: [buildSystem()],
    cgroupParent: steps.parent,
    ...limits,
  });
}

/** Builds `dockerfile` as image `name` of ada's on `system`, to its end. */
async function buildDockerfile(on: BuildServices, name: string, dockerfile: string, system = 'default'): Promise<BuildRow> {
  const { build } = await on.builds.create(ada, 'ada', { name, system, mode: 'dockerfile', dockerfile }, []);
  return on.run(build.id);
}

async function refused(raw: Record<string, unknown>, files: UploadedWheel[] = []): Promise<AppError> {
  const err = await services.builds.create(ada, 'ada', raw, files).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

beforeAll(async () => {
  docker = ciDocker();
  git = await startGitServer();
  ({ registry, digest: baseDigest } = await debianBuildBase('builds/base/debian'));
  folder = `${registry}/builds`;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-builds-'));
  wheel = greetingWheel(dir);
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  steps = await pidsCgroup(docker, `ci-builds-${process.pid}`, 512);
  services = buildServices(db, {
    keyring: await createKeyring([new Uint8Array(32).fill(9)]),
    trustedRegistries: [registry],
    trustedGitHosts: [git.host],
    systems: [buildSystem(), buildSystem({ network: 'none' }, 'offline')],
    timeoutMs: 120_000,
    cgroupParent: steps.parent,
    workDir: WorkDir.open(path.join(dir, 'work')),
  });
}, 300_000);

afterAll(async () => {
  await steps?.remove();
  services?.workDir.close();
  await db?.destroy();
  await git?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('building from a base image plus packages', { timeout: 300_000 }, () => {
  it('builds, pushes, checks and pins the pushed digest; the package imports in the image', async () => {
    const { image, build } = await services.builds.create(
      ada,
      'ada',
      { name: 'greeting-env', system: 'default', mode: 'packages', base: 'Debian with JupyterHub', pip: '--no-index\nci-greeting==1.0\n' },
      [wheel],
    );
    expect(build.status).toBe('queued');
    expect(image.reference).toBe(`${folder}/built/ada/greeting-env:1`);
    const done = await services.run(build.id);
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(done.log).toMatch(/Successfully installed ci-greeting-1.0/);
    expect(done.steps).toBeGreaterThan(0);

    // The check was queued by the build; run it as a worker would.
    const [check] = await services.checkServices.store.forImage('ada', image.id);
    expect(check?.status).toBe('queued');
    const checked = await services.checkServices.run(services.checks, check!.id);
    if (checked.status !== 'passed') console.log(checked.log, checked.findings);
    expect(checked.status).toBe('passed');
    expect(checked.manifestDigest ?? checked.digest).toBe(done.digest);
    const view = await services.checkServices.images.load('ada', image.id);
    expect(view.status.code).toBe('passed');

    // In the pushed image, pinned by digest, with no network: the package imports.
    const pinned = `${folder}/built/ada/greeting-env@${done.digest}`;
    const out = execFileSync('docker', [
      'run',
      '--rm',
      '--network',
      'none',
      '--user',
      '1000:100',
      pinned,
      'python3',
      '-c',
      'import ci_greeting; print(ci_greeting.hello())',
    ]);
    expect(out.toString().trim()).toBe('hello from a built image');
  });
});

describe('a failing build', { timeout: 300_000 }, () => {
  it('says at which step it failed, keeps the output, and leaves no container or untagged layer', async () => {
    const before = await imageIds();
    const marker = `fails-${Date.now()}`;
    const done = await buildDockerfile(
      services,
      'fails',
      `FROM ${folder}/base/debian:1\nRUN echo ${marker} > /first\nRUN echo "compiling went wrong" >&2; exit 3\n`,
    );
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/^Build failed at step 3 of 3 \(RUN echo "compiling went wrong"/);
    expect(done.message).toMatch(/returned a non-zero code: 3/);
    expect(done.log).toMatch(/compiling went wrong/);
    // Step 2 committed a layer with the marker; the failed build removed it again.
    expect(done.log).toMatch(new RegExp(`Step 2/3 : RUN echo ${marker}`));
    expect(await leftBehind(before, marker)).toEqual({ layers: [], containers: [] });
  });

  it('stops a build past its time limit and leaves nothing behind', async () => {
    const quick = await servicesWith({ timeoutMs: 15_000 });
    const before = await imageIds();
    const marker = `sleeps-${Date.now()}`;
    const done = await buildDockerfile(
      quick,
      'sleeps',
      `FROM ${folder}/base/debian:1\nRUN echo ${marker} > /before\nRUN sleep 300 # ${marker}\n`,
    );
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/took longer than 15 s and was stopped at step 3 of 3 \(RUN sleep 300/);
    // The engine removes the step's container once the cancelled request ends.
    const clean = { layers: [], containers: [] };
    for (let i = 0; i < 50 && JSON.stringify(await leftBehind(before, marker)) !== JSON.stringify(clean); i++)
      await new Promise((r) => setTimeout(r, 200));
    expect(await leftBehind(before, marker)).toEqual(clean);
  });

  it('queues a build again when its replica stops (SIGTERM), leaving nothing running', async () => {
    const before = await imageIds();
    const marker = `stopped-${Date.now()}`;
    const dockerfile = `FROM ${folder}/base/debian:1\nRUN echo ${marker} > /first\nRUN sleep 300 # ${marker}\n`;
    const { build } = await services.builds.create(ada, 'ada', { name: 'stopped', system: 'default', mode: 'dockerfile', dockerfile }, []);
    const stopping = new AbortController();
    const running = services.run(build.id, stopping.signal);
    // Stopped while the last step runs: its container is there.
    const sleeping = async () => (await docker.listContainers()).some((c) => c.Command.includes(`sleep 300 # ${marker}`));
    for (let i = 0; i < 300 && !(await sleeping()); i++) await new Promise((r) => setTimeout(r, 100));
    stopping.abort();
    const row = await running;
    expect(row.status).toBe('queued');
    expect(row.runner).toBeNull();
    expect(row.log).toMatch(/Step 3\/3 : RUN sleep 300/);
    expect(row.log).toMatch(/The service stopped during the build; it is queued again/);
    const clean = { layers: [], containers: [] };
    for (let i = 0; i < 50 && JSON.stringify(await leftBehind(before, marker)) !== JSON.stringify(clean); i++)
      await new Promise((r) => setTimeout(r, 200));
    expect(await leftBehind(before, marker)).toEqual(clean);
    await db('builds').where({ id: build.id }).delete();
  });

  it("stops a fork bomb at the processes of the admin's cgroup parent, and says so", async () => {
    const cgroup = await pidsCgroup(docker, `ci-build-pids-${process.pid}`, 40);
    try {
      const limited = await servicesWith({ cgroupParent: cgroup.parent });
      const before = await imageIds();
      const marker = `forks-${Date.now()}`;
      // Each call starts two more, ten deep: about two thousand processes at once unbounded (and no more, should
      // the bound be missing on a test machine), each of the 1024 leaves leaving a file; the parent allows 40.
      const bomb = `FROM ${folder}/base/debian:1\nRUN bomb() { if [ "$1" -gt 0 ]; then bomb $(($1 - 1)) & bomb $(($1 - 1)); wait; else sleep 5; mktemp /tmp/leaf.XXXXXX; fi; }; bomb 10 >/dev/null; test "$(ls /tmp | grep -c leaf)" -eq 1024 # ${marker}\n`;
      const done = await buildDockerfile(limited, 'forks', bomb);
      expect(done.status).toBe('failed');
      expect(done.log).toMatch(/Cannot fork/);
      expect(done.message).toMatch(/^Build failed at step 2 of 2 \(RUN bomb\(\)/);
      expect(done.message).toMatch(/started more processes than a build step may run at once/);
      expect(await leftBehind(before, marker)).toEqual({ layers: [], containers: [] });
    } finally {
      await cgroup.remove();
    }
  });

  it('says a step killed at its memory limit ran out of memory', async () => {
    const small = await servicesWith({ memoryBytes: 256 * 1024 * 1024 });
    const done = await buildDockerfile(
      small,
      'hungry',
      `FROM ${folder}/base/debian:1\nRUN python3 -c "held = b'x' * (600 * 1024 * 1024)"\n`,
    );
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/returned a non-zero code: 137\. The step was killed, most likely for using more than the 256 MiB/);
  });

  it('fails a RUN that reaches for the network on a system that builds without one, saying so', async () => {
    const done = await buildDockerfile(
      services,
      'offline',
      `FROM ${folder}/base/debian:1\nRUN python3 -c "import socket; socket.create_connection(('192.0.2.1', 80), timeout=5)"\n`,
      'offline',
    );
    expect(done.status).toBe('failed');
    expect(done.log).toMatch(/Network is unreachable/);
    expect(done.message).toMatch(/This system builds without a network: RUN steps cannot download anything/);
  });
});

describe('what a build may write', { timeout: 300_000 }, () => {
  it('stops a build that writes more than its disk limit, says so, and leaves nothing', async () => {
    const small = await servicesWith({ diskBytes: 100e6 });
    const before = await imageIds();
    const marker = `writes-${Date.now()}`;
    // Written in one step that then waits: the running step's container is what is measured.
    const done = await buildDockerfile(
      small,
      'writes',
      `FROM ${folder}/base/debian:1\nRUN dd if=/dev/zero of=/big bs=1M count=300 && sleep 120 # ${marker}\n`,
    );
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(
      /^The build wrote more than the 100 MB a build may write to the engine's disk \(\d+ MB when it was measured\) and was stopped at step 2 of 2 \(RUN dd/,
    );
    const clean = { layers: [], containers: [] };
    for (let i = 0; i < 50 && JSON.stringify(await leftBehind(before, marker)) !== JSON.stringify(clean); i++)
      await new Promise((r) => setTimeout(r, 200));
    expect(await leftBehind(before, marker)).toEqual(clean);
  });

  it('counts the layers a build committed as well as its running step', async () => {
    const small = await servicesWith({ diskBytes: 100e6 });
    const before = await imageIds();
    const marker = `layers-${Date.now()}`;
    // Three steps of 60 MB each: none is over the limit alone, and the last one ends the build.
    const step = (n: number) => `RUN dd if=/dev/urandom of=/part${n} bs=1M count=60 # ${marker}`;
    const done = await buildDockerfile(small, 'layers', `FROM ${folder}/base/debian:1\n${[1, 2, 3].map(step).join('\n')}\n`);
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/^The build wrote more than the 100 MB a build may write/);
    expect(await leftBehind(before, marker)).toEqual({ layers: [], containers: [] });
    expect(await registryHas('built/ada/layers', '1')).toBe(false);
  });

  it('pushes no image larger than the limit, says so, and removes its layers', async () => {
    const base =
      (
        await docker
          .getImage(`${folder}/base/debian:1`)
          .inspect()
          .catch(() => undefined)
      )?.Size ?? 0;
    const limited = await servicesWith({ imageBytes: (base || 500e6) + 30e6 });
    const before = await imageIds();
    const marker = `large-${Date.now()}`;
    const done = await buildDockerfile(
      limited,
      'large',
      `FROM ${folder}/base/debian:1\nRUN dd if=/dev/urandom of=/large bs=1M count=50 # ${marker}\n`,
    );
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(
      /^The built image is \d+ MB, more than the \d+ MB an image built here may have \(its base image included\); it was not pushed/,
    );
    expect(done.digest).toBeNull();
    expect(await registryHas('built/ada/large', '1')).toBe(false);
    expect(
      await docker
        .getImage(done.target)
        .inspect()
        .catch(() => 'gone'),
    ).toBe('gone');
    expect(await leftBehind(before, marker)).toEqual({ layers: [], containers: [] });
  });
});

describe("a build's own layers", { timeout: 300_000 }, () => {
  it("labels every stage of a Dockerfile as Docker reads it, shows the researcher's steps, and rebuilds from the cache", async () => {
    const marker = `stages-${Date.now()}`;
    // An escape directive, a FROM continued over a comment, two stages.
    const dockerfile = [
      '# escape=`',
      `FROM ${folder}/base/debian:1 \``,
      '  # the first stage',
      '  AS build',
      `RUN echo ${marker} > /built`,
      `FROM ${folder}/base/debian:1`,
      'COPY --from=build /built /built',
      '',
    ].join('\n');
    const { image, build } = await services.builds.create(
      ada,
      'ada',
      { name: 'stages', system: 'default', mode: 'dockerfile', dockerfile },
      [],
    );
    const done = await services.run(build.id);
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.log).toMatch(/Step 1\/4 : FROM \S+ +AS build\n/);
    expect(done.log).toMatch(new RegExp(`Step 2/4 : RUN echo ${marker}`));
    expect(done.log).toMatch(/Step 4\/4 : COPY --from=build \/built \/built/);
    expect(done.log).not.toMatch(/LABEL/);
    const labels = (await docker.getImage(done.target).inspect()).Config.Labels ?? {};
    expect(Object.keys(labels)).toEqual(['custom-images.layers']);
    // The first stage's layers carry the same label: they are the build's own too (the label's, the RUN's, the COPY's).
    const labelled = await docker.listImages({ all: true, filters: { label: [`custom-images.layers=${labels['custom-images.layers']}`] } });
    expect(labelled.length).toBeGreaterThanOrEqual(3);

    const again = await services.run((await services.builds.rebuild(ada, 'ada', image.id, undefined, [])).id);
    expect(again.status).toBe('succeeded');
    expect(again.log.match(/Using cache/g)?.length).toBe(2);
    expect(again.digest).toBe(done.digest);
    // The first stage's layers are the build's cache, not the image's parents: the test removes them from the shared engine.
    const stageLayers = labelled
      .filter((i) => (i.RepoTags ?? []).every((t) => t === '<none>:<none>'))
      .sort((a, b) => b.Created - a.Created);
    // Twice: layers made in the same second come in any order, and a parent goes only after its child.
    for (const { Id } of [...stageLayers, ...stageLayers])
      await docker
        .getImage(Id)
        .remove({ noprune: true })
        .catch(() => undefined);
  });

  it('removes no image that a failing RUN names in its output', async () => {
    const tag = `ci-someone-else-${process.pid}/env:1`;
    const victim = await someoneElsesImage(tag);
    try {
      const short = victim.replace(/^sha256:/, '').slice(0, 12);
      // What the classic builder prints for a committed step, printed by the step itself.
      const done = await buildDockerfile(
        services,
        'prints-ids',
        `FROM ${folder}/base/debian:1\nRUN echo " ---> Running in 0123456789ab"; echo " ---> ${short}"; exit 1\n`,
      );
      expect(done.status).toBe('failed');
      expect(done.log).toContain(` ---> ${short}`);
      expect((await docker.getImage(victim).inspect()).RepoTags).toEqual([tag]);
    } finally {
      await docker
        .getImage(tag)
        .remove()
        .catch(() => undefined);
    }
  });

  it('leaves no layer of its own after a failure, COPY and ADD steps included, and removes nothing else', async () => {
    const tag = `ci-bystander-${process.pid}/env:1`;
    const bystander = await someoneElsesImage(tag);
    try {
      const before = await imageIds();
      const marker = `copied-${Date.now()}`;
      const { build } = await services.builds.create(
        ada,
        'ada',
        {
          name: 'copies',
          system: 'default',
          mode: 'dockerfile',
          // The COPY and ADD layers come after the RUN's: the classic builder prints no "Running in" for them.
          dockerfile: `FROM ${folder}/base/debian:1\nRUN echo ${marker} > /ran\nCOPY input.txt /copied-${marker}\nADD input.txt /added-${marker}\nRUN exit 4\n`,
        },
        [{ name: 'input.txt', content: Buffer.from(marker) }],
      );
      const done = await services.run(build.id);
      expect(done.status).toBe('failed');
      // The researcher's own step numbers.
      expect(done.message).toMatch(/^Build failed at step 5 of 5 \(RUN exit 4\)/);
      expect(done.log).toMatch(new RegExp(`Step 3/5 : COPY input.txt /copied-${marker}`));
      expect(await leftBehind(before, marker)).toEqual({ layers: [], containers: [] });
      expect((await docker.getImage(bystander).inspect()).RepoTags).toEqual([tag]);
      expect(await docker.getImage(`${folder}/base/debian@${baseDigest}`).inspect()).toBeTruthy();
    } finally {
      await docker
        .getImage(tag)
        .remove()
        .catch(() => undefined);
    }
  });
});

describe('a git build context', { timeout: 300_000 }, () => {
  it('builds a public repository at the pinned commit, not its newest', async () => {
    const pinned = git.commit('lab/env.git', { 'message.txt': 'from the pinned commit\n' });
    git.commit('lab/env.git', { 'message.txt': 'from a later commit\n' });
    const { build } = await services.builds.create(
      ada,
      'ada',
      {
        name: 'from-git',
        system: 'default',
        mode: 'dockerfile',
        dockerfile: `FROM ${folder}/base/debian:1\nCOPY message.txt /message.txt\n`,
        gitUrl: `${git.origin}/lab/env.git`,
        gitRef: pinned,
      },
      [],
    );
    const done = await services.run(build.id);
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.gitCommit).toBe(pinned);
    const out = execFileSync('docker', ['run', '--rm', '--network', 'none', done.target, 'cat', '/message.txt']);
    expect(out.toString()).toBe('from the pinned commit\n');
  });

  it("builds the repository's own Dockerfile when the form leaves it blank, under the system's rules", async () => {
    const fromGit = (name: string, repo: string) =>
      services.builds.create(ada, 'ada', { name, system: 'default', mode: 'dockerfile', gitUrl: `${git.origin}/${repo}` }, []);
    git.commit('lab/with-dockerfile.git', {
      Dockerfile: `FROM ${folder}/base/debian:1\nCOPY hello.txt /hello.txt\n`,
      'hello.txt': 'from the repository\n',
    });
    const good = await services.run((await fromGit('repo-dockerfile', 'lab/with-dockerfile.git')).build.id);
    if (good.status !== 'succeeded') console.log(good.log);
    expect(good.status).toBe('succeeded');
    expect(good.log).toMatch(/Building the repository's Dockerfile/);
    expect(execFileSync('docker', ['run', '--rm', '--network', 'none', good.target, 'cat', '/hello.txt']).toString()).toBe(
      'from the repository\n',
    );

    git.commit('lab/elsewhere.git', { Dockerfile: 'FROM docker.io/library/python:3.12\n' });
    const elsewhere = await services.run((await fromGit('repo-elsewhere', 'lab/elsewhere.git')).build.id);
    expect(elsewhere.status).toBe('failed');
    expect(elsewhere.message).toMatch(
      /The repository's Dockerfile cannot be built here: Line 1: docker\.io\/library\/python is not among the registries/,
    );

    git.commit('lab/no-dockerfile.git', { 'README.md': 'nothing to build\n' });
    const none = await services.run((await fromGit('repo-none', 'lab/no-dockerfile.git')).build.id);
    expect(none.status).toBe('failed');
    expect(none.message).toMatch(/The repository has no Dockerfile at its top/);
  });

  it('fetches through the address guard: a host on a private address that no admin trusts is refused', async () => {
    const { build } = await services.builds.create(
      ada,
      'ada',
      {
        name: 'internal-git',
        system: 'default',
        mode: 'dockerfile',
        dockerfile: `FROM ${folder}/base/debian:1\n`,
        gitUrl: 'https://127.0.0.1:9/internal/repo.git',
      },
      [],
    );
    const done = await services.run(build.id);
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/The git host 127\.0\.0\.1 is on a private or internal network address/);
    expect(done.message).toMatch(/CUSTOM_IMAGES_TRUSTED_GIT_HOSTS/);
  });

  it('fetches a private repository with its token, which appears in no log, answer or layer', async () => {
    git.commit('private/secret-env.git', { 'setup.sh': '#!/bin/sh\necho private-setup-ran > /private-setup\n' });
    const missing = await services.builds.create(
      ada,
      'ada',
      {
        name: 'private-no-token',
        system: 'default',
        mode: 'dockerfile',
        dockerfile: `FROM ${folder}/base/debian:1\nCOPY . /src\n`,
        gitUrl: `${git.origin}/private/secret-env.git`,
      },
      [],
    );
    const failed = await services.run(missing.build.id);
    expect(failed.status).toBe('failed');
    expect(failed.message).toMatch(/needs an access token: the repository is private/);

    const { image, build } = await services.builds.create(
      ada,
      'ada',
      {
        name: 'private-env',
        system: 'default',
        mode: 'dockerfile',
        dockerfile: `FROM ${folder}/base/debian:1\nCOPY . /src\nRUN sh /src/setup.sh && ls -a /src\n`,
        gitUrl: `${git.origin}/private/secret-env.git`,
        gitToken: git.token,
      },
      [],
    );
    const done = await services.run(build.id);
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.log).not.toContain(git.token);
    expect(JSON.stringify(await services.builds.get(ada, 'ada', image.id, 1))).not.toContain(git.token);
    const rows = JSON.stringify(await db('builds').select('log', 'message', 'inputs'));
    expect(rows).not.toContain(git.token);
    // Every layer of the pushed image, as the engine exports it: no token, no .git.
    const saved = execFileSync('docker', ['save', done.target], { maxBuffer: 1024 * 1024 * 1024 });
    expect(saved.includes(Buffer.from(git.token))).toBe(false);
    const listing = execFileSync('docker', ['run', '--rm', '--network', 'none', done.target, 'ls', '-a', '/src']).toString();
    expect(listing).toContain('setup.sh');
    expect(listing).not.toContain('.git');

    // A rebuild with the same inputs keeps the stored token.
    const again = await services.builds.rebuild(ada, 'ada', image.id, undefined, []);
    expect((await services.run(again.id)).status).toBe('succeeded');
  });
});

describe('redirects of a git host', { timeout: 300_000 }, () => {
  /** A host that redirects every request to `target` (as a moved repository does), keeping what it was asked. */
  async function redirector(target: string): Promise<{ host: string; origin: string; seen: string[]; stop(): Promise<void> }> {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.url ?? '');
      res.writeHead(302, { Location: `${target}${req.url ?? '/'}` }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
    return {
      host,
      origin: `http://${host}`,
      seen,
      stop: () => new Promise((resolve) => server.close(() => resolve())),
    };
  }

  /** Build services that trust the git hosts `trusted` and no others. */
  async function trusting(trusted: string[]): Promise<BuildServices> {
    return buildServices(db, {
      keyring: await createKeyring([new Uint8Array(32).fill(9)]),
      trustedRegistries: [registry],
      trustedGitHosts: trusted,
      systems: [buildSystem()],
      cgroupParent: steps.parent,
      workDir: services.workDir,
    });
  }

  const fromRepository = (on: BuildServices, name: string, url: string, token = '') =>
    on.builds.create(
      ada,
      'ada',
      {
        name,
        system: 'default',
        mode: 'dockerfile',
        dockerfile: `FROM ${folder}/base/debian:1\nCOPY . /src\n`,
        gitUrl: url,
        ...(token ? { gitToken: token } : {}),
      },
      [],
    );

  it("lends a trusted host's trust to no other host it redirects to: a private one is refused, and sees nothing", async () => {
    const elsewhere = await startGitServer();
    elsewhere.commit('lab/moved.git', { 'notes.txt': 'reached through a redirect\n' });
    const moved = await redirector(elsewhere.origin);
    try {
      const on = await trusting([moved.host]);
      const { build } = await fromRepository(on, 'redirected', `${moved.origin}/lab/moved.git`);
      const done = await on.run(build.id);
      expect(done.status).toBe('failed');
      expect(done.message).toMatch(/The git host 127\.0\.0\.1 is on a private or internal network address/);
      expect(done.message).toMatch(/CUSTOM_IMAGES_TRUSTED_GIT_HOSTS/);
      expect(moved.seen.length).toBeGreaterThan(0);
      expect(elsewhere.requests).toEqual([]);
    } finally {
      await moved.stop();
      await elsewhere.stop();
    }
  });

  it("follows a redirect to a host trusted in its own right, without the other host's token", async () => {
    const elsewhere = await startGitServer('ghp_elsewhere-token-41c7');
    elsewhere.commit('lab/moved.git', { 'notes.txt': 'reached through a redirect\n' });
    elsewhere.commit('private/moved.git', { 'notes.txt': 'private\n' });
    const moved = await redirector(elsewhere.origin);
    try {
      const on = await trusting([moved.host, elsewhere.host]);
      const open = await on.run((await fromRepository(on, 'redirected-ok', `${moved.origin}/lab/moved.git`)).build.id);
      if (open.status !== 'succeeded') console.log(open.log);
      expect(open.status).toBe('succeeded');
      // The token is for the host the researcher named; the host it redirects to never gets it.
      const token = 'ghp_for-the-named-host-only-93d1';
      const closed = await on.run((await fromRepository(on, 'redirected-private', `${moved.origin}/private/moved.git`, token)).build.id);
      expect(closed.status).toBe('failed');
      expect(closed.message).toMatch(/refused the access token|needs an access token/);
      expect(elsewhere.requests.length).toBeGreaterThan(0);
      expect(elsewhere.requests.map((r) => r.authorization)).toEqual(elsewhere.requests.map(() => undefined));
    } finally {
      await moved.stop();
      await elsewhere.stop();
    }
  });
});

describe('requests that are refused before anything is stored', { timeout: 60_000 }, () => {
  const base = { system: 'default', mode: 'dockerfile' };
  const cases: Array<[string, Record<string, unknown>, string, RegExp, UploadedWheel[]?]> = [
    [
      'a Dockerfile over the size limit',
      { name: 'big', dockerfile: `FROM x\n${'# padding\n'.repeat(8000)}` },
      'dockerfile',
      /at most 64 KiB/,
    ],
    [
      'a FROM outside the allowed registries',
      { name: 'elsewhere', dockerfile: 'FROM docker.io/library/python:3.12\n' },
      'dockerfile',
      /Line 1: docker\.io\/library\/python is not among the registries/,
    ],
    [
      'a FROM with an undefined build argument',
      { name: 'argful', dockerfile: 'FROM ${BASE}\n' },
      'dockerfile',
      /uses a build argument without a default/,
    ],
    [
      'an unknown base image',
      { name: 'unknown-base', mode: 'packages', base: 'Fedora 40' },
      'base',
      /"Fedora 40" is not a base image of this system/,
    ],
    [
      'a malformed requirements line',
      { name: 'bad-req', mode: 'packages', base: 'Debian with JupyterHub', pip: 'numpy==1.26\nthis is not a package\n' },
      'pip',
      /Line 2: "this is not a package" is not a requirement/,
    ],
    [
      'a requirements line naming another file',
      { name: 'bad-req2', mode: 'packages', base: 'Debian with JupyterHub', pip: '-r other.txt\n' },
      'pip',
      /Line 1: "-r other.txt" is not an option a build can use/,
    ],
    [
      'a malformed apt package',
      { name: 'bad-apt', mode: 'packages', base: 'Debian with JupyterHub', apt: 'git; rm -rf /' },
      'apt',
      /is not a package name|are not package names/,
    ],
    [
      'an environment.yml without dependencies',
      { name: 'bad-conda', mode: 'packages', base: 'Debian with JupyterHub', conda: 'name: x\n' },
      'conda',
      /lists no dependencies/,
    ],
    [
      'an upload too large',
      { name: 'big-upload', dockerfile: 'FROM 127.0.0.1:1/x\n' },
      'files',
      /at most 1\.0 MiB are allowed/,
      [{ name: 'data.bin', content: Buffer.alloc(1024 * 1024 + 1) }],
    ],
    ['a name that is not a path component', { name: 'My Env!', dockerfile: `FROM x\n` }, 'name', /lower-case letters and digits/],
    [
      'a token inside the repository URL',
      { name: 'url-token', dockerfile: 'FROM x\n', gitUrl: 'https://user:secret@example.org/a.git' },
      'gitUrl',
      /Put no credentials in the URL/,
    ],
    [
      'a plain-http repository on an untrusted host',
      { name: 'http-git', dockerfile: 'FROM x\n', gitUrl: 'http://example.org/a.git' },
      'gitUrl',
      /starts with https/,
    ],
  ];
  it.each(cases)('%s: 400 naming the field, nothing saved', async (_what, raw, field, message, files = []) => {
    const images = await db('images').count({ n: '*' }).first();
    const builds = await db('builds').count({ n: '*' }).first();
    const err = await refused({ ...base, ...raw }, files);
    expect(err.status).toBe(400);
    expect(err.fields[field]).toMatch(message);
    expect(await db('images').count({ n: '*' }).first()).toEqual(images);
    expect(await db('builds').count({ n: '*' }).first()).toEqual(builds);
  });

  it('refuses a second image of the same name with 409 on the name', async () => {
    const err = await refused({ ...base, name: 'greeting-env', dockerfile: `FROM ${folder}/base/debian:1\n` });
    expect(err.status).toBe(409);
    expect(err.field).toBe('name');
  });
});
