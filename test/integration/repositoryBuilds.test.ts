/**
 * Repositories without a Dockerfile built by repo2docker's rules (issue #24),
 * with a real Docker engine, a registry, a git smart-HTTP server and a PEP 503
 * index on loopback (the system's pip mirror): laid out like repo2docker's
 * test repositories, each image holds what the files asked for; what cannot
 * be built is refused in words before any build step runs.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { WorkDir } from '../../server/workDir.js';
import { buildServices, type BuildServices } from '../support/builds.js';
import { pidsCgroup, type PidsCgroup } from '../support/cgroup.js';
import { ciDocker } from '../support/docker.js';
import { startAptRepository, type AptRepository } from '../support/aptRepository.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { testUser } from '../support/identities.js';
import { debianBuildBase } from '../support/buildRegistry.js';
import { startPackageIndex, type PackageIndex } from '../support/packageIndex.js';
import { testSystem } from '../support/systems.js';

/** The Debian base with JupyterHub, in the suite's build registry (test/support/buildRegistry.ts). */
let base: string;
let git: GitServer;
let index: PackageIndex;
let apt: AptRepository;
let db: Knex;
let dir: string;
let services: BuildServices;
let steps: PidsCgroup;
const ada = testUser('ada');

const request = (name: string, repo: string) => ({ name, system: 'default', mode: 'repository', gitUrl: `${git.origin}/${repo}` });

/** Runs `command` in the built image as the system's uid would, through the image's entrypoint. */
function inImage(image: string, script: string): string {
  return execFileSync('docker', ['run', '--rm', '--network', 'none', '--user', '1000:100', image, 'sh', '-c', script]).toString();
}

/** Submits and runs a build of `repo`; its row once ended. */
async function build(name: string, repo: string) {
  const { build: queued } = await services.builds.create(ada, 'ada', request(name, repo), []);
  return services.run(queued.id);
}

beforeAll(async () => {
  const debian = await debianBuildBase('r2d/debian', { user: 'jovyan' });
  base = debian.image;
  git = await startGitServer();
  index = await startPackageIndex();
  apt = await startAptRepository('ci-r2d-tool', 'from the site apt mirror\n');
  index.add('ci-r2d-paper', '1.0');
  index.add('ci-r2d-binder', '2.0');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-r2d-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  steps = await pidsCgroup(ciDocker(), `ci-r2d-${process.pid}`, 512);
  services = buildServices(db, {
    keyring: await createKeyring([new Uint8Array(32).fill(9)]),
    trustedRegistries: [debian.registry],
    trustedGitHosts: [git.host],
    systems: [
      testSystem({
        slug: 'default',
        allowedRegistries: [`${debian.registry}/r2d/*`],
        build: {
          enabled: true,
          pushTo: `${debian.registry}/r2d/built`,
          network: 'host',
          baseImages: [{ name: 'Debian', image: base }],
          mirrors: { pipIndexUrl: index.url, aptSources: [apt.source] },
        },
      }),
    ],
    timeoutMs: 300_000,
    cgroupParent: steps.parent,
    workDir: WorkDir.open(path.join(dir, 'work')),
  });
}, 300_000);

afterAll(async () => {
  await steps?.remove();
  services?.workDir.close();
  await db?.destroy();
  await index?.stop();
  await apt?.stop();
  await git?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('a repository built by repo2docker’s rules', { timeout: 600_000 }, () => {
  it('requirements.txt alone: the package comes from the site mirror, the notebook is in the home, owned by the system uid', async () => {
    git.commit('lab/paper.git', { 'requirements.txt': 'ci-r2d-paper==1.0\n', 'paper.ipynb': '{"cells": []}\n' });
    const done = await build('paper', 'lab/paper.git');
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.log).toContain('Honouring requirements.txt');
    expect(done.log).toContain(`PIP_INDEX_URL='${index.url}'`);
    expect(index.downloads).toContain('ci_r2d_paper-1.0-py3-none-any.whl');
    const out = inImage(
      done.target,
      'python3 -c "import ci_r2d_paper; print(ci_r2d_paper.__version__)"; stat -c "%u %n" ~/paper.ipynb; echo $HOME',
    );
    expect(out).toBe('1.0\n1000 /home/jovyan/paper.ipynb\n/home/jovyan\n');
  });

  it('binder/ wins over the top; postBuild runs as the user at the end; start runs before the command', async () => {
    git.commit('lab/binder.git', {
      'requirements.txt': 'not a requirement at all, but binder/ wins\n',
      'binder/requirements.txt': 'ci-r2d-binder\n',
      // Written on Windows (CRLF line ends): "#!/bin/sh\r" is no interpreter until they are made Unix ones.
      'binder/postBuild': '#!/bin/sh\r\nset -e\r\necho "built by $(id -u)" > ~/postbuild.txt\r\n',
      'binder/start': '#!/bin/sh\r\nexport CI_START_VARIABLE="set by start"\r\nexec "$@"\r\n',
      'index.ipynb': '{}\n',
    });
    const done = await build('binder', 'lab/binder.git');
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.log).toContain('Honouring binder/requirements.txt, binder/postBuild, binder/start');
    expect(done.log).toContain('binder/start runs at every server start');
    // What the build page and the API show: the written Dockerfile, the start script, the commit.
    const details = await services.builds.get(ada, 'ada', done.imageId, done.number);
    expect(details.inputs.dockerfile).toContain('ENTRYPOINT ["/home/jovyan/binder/start"]');
    expect(details.inputs.start).toBe('binder/start');
    expect(details.build.gitCommit).toBe(done.gitCommit);
    const out = inImage(done.target, 'python3 -c "import ci_r2d_binder"; cat ~/postbuild.txt; echo "$CI_START_VARIABLE"; ls ~/index.ipynb');
    expect(out).toBe('built by 1000\nset by start\n/home/jovyan/index.ipynb\n');
  });

  it('a Dockerfile in binder/ wins over everything, and is shown as the repository’s own, its comments never taken for ours', async () => {
    git.commit('lab/docker.git', {
      'requirements.txt': 'not a requirement at all, but the Dockerfile wins\n',
      'binder/requirements.txt': 'not one either\n',
      'binder/Dockerfile': [
        `FROM ${base}`,
        // The writer's own wording for a start script: a repository's Dockerfile must not make the page say it.
        '# Runs at every server start, before the server: README.md (harmless)',
        'COPY --chown=1000:100 . /home/jovyan/',
        'RUN echo "from binder/Dockerfile" > /tmp/ci-marker',
        '',
      ].join('\n'),
      'README.md': 'the paper\n',
    });
    const done = await build('docker', 'lab/docker.git');
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.log).toContain('Building binder/Dockerfile: a Dockerfile wins');
    const details = await services.builds.get(ada, 'ada', done.imageId, done.number);
    expect(details.inputs.dockerfile).toBe('');
    expect(details.inputs.start).toBeNull();
    expect(inImage(done.target, 'cat /tmp/ci-marker; ls ~/README.md')).toBe('from binder/Dockerfile\n/home/jovyan/README.md\n');
  });

  it('apt.txt + setup.py + runtime.txt that matches: the apt package from the site mirror, the package installed, the sources left alone', async () => {
    git.commit('lab/tools.git', {
      'apt.txt': '# from the site mirror\nci-r2d-tool\n',
      'runtime.txt': 'python-3.11\n',
      'setup.py': 'from setuptools import setup\nsetup(name="ci-r2d-own", version="0.1", py_modules=["ci_r2d_own"])\n',
      'ci_r2d_own.py': 'VALUE = "own module"\n',
    });
    const done = await build('tools', 'lab/tools.git');
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.log).toContain('Honouring runtime.txt, apt.txt, setup.py');
    expect(apt.requests).toContain('/ci-r2d-tool_1.0_all.deb');
    const out = inImage(
      done.target,
      'cat /usr/share/ci-r2d-tool/marker; cd /tmp && python3 -c "import ci_r2d_own; print(ci_r2d_own.VALUE)"; ls -A ~ | grep -c egg-info || true',
    );
    expect(out).toBe('from the site apt mirror\nown module\n0\n');
  });

  it('an editable install of the repository (-e .) leaves the home the user’s: what pip wrote there as root is handed back', async () => {
    git.commit('lab/editable.git', {
      // In binder/, so that setup.py is not also installed as a package: the editable install is the one.
      'binder/requirements.txt': '-e .\n',
      'setup.py': 'from setuptools import setup\nsetup(name="ci-r2d-editable", version="0.1", py_modules=["ci_r2d_editable"])\n',
      'ci_r2d_editable.py': 'VALUE = "editable"\n',
    });
    const done = await build('editable', 'lab/editable.git');
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    const out = inImage(
      done.target,
      'cd /tmp && python3 -c "import ci_r2d_editable; print(ci_r2d_editable.__file__)"; ls -d ~/*.egg-info | wc -l; find ~ -xdev ! -user 1000 | wc -l',
    );
    // Editable: the module is the one in the home, pip's record of it is there, and every file there is the user's.
    expect(out).toBe('/home/jovyan/ci_r2d_editable.py\n1\n0\n');
  });

  it.each([
    [
      'environment.yml on a base without conda',
      { 'environment.yml': 'dependencies:\n  - numpy\n' },
      /environment\.yml needs conda, and the base image .* has neither conda nor mamba/,
    ],
    [
      'an unreadable requirements line',
      { 'requirements.txt': 'numpy\n!!! what\n' },
      /requirements\.txt: Line 2: "!!! what" is not a requirement/,
    ],
    ['R', { 'install.R': 'install.packages("x")\n' }, /install\.R asks for R: this service builds Python environments only/],
  ])('refuses %s in words, before any build step', async (_what, files, words) => {
    const repo = `lab/refused-${Object.keys(files)[0]?.replace(/\W/g, '')}.git`;
    git.commit(repo, files);
    const done = await build(`refused-${Object.keys(files)[0]?.replace(/\W/g, '').toLowerCase()}`, repo);
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(words);
    expect(done.step).toBe(0);
  });

  it('runtime.txt asking for another Python than the base has: refused in words at the first step', async () => {
    git.commit('lab/old-python.git', { 'runtime.txt': 'python-3.6\n', 'requirements.txt': 'ci-r2d-paper\n' });
    const done = await build('old-python', 'lab/old-python.git');
    expect(done.status).toBe('failed');
    expect(done.log).toContain(
      'runtime.txt asks for Python 3.6, but the base image has another Python; choose a base image with Python 3.6',
    );
  });

  it('one build per commit: the same commit is the same build; a new commit of the branch builds again', async () => {
    git.commit('lab/again.git', { 'requirements.txt': 'ci-r2d-paper\n', 'a.ipynb': '{}\n' });
    const first = await build('again', 'lab/again.git');
    expect(first.status).toBe('succeeded');
    const builds = await db('builds').count({ n: '*' }).first();
    const again = await services.builds.create(ada, 'ada', request('again-two', 'lab/again.git'), []);
    expect(again.reused).toBe(true);
    expect(again.build.id).toBe(first.id);
    expect(again.image.name).toBe('again');
    expect(await db('builds').count({ n: '*' }).first()).toEqual(builds);
    // A rebuild of the same commit is no new build either.
    expect((await services.builds.rebuild(ada, 'ada', first.imageId, undefined, [])).id).toBe(first.id);
    const moved = git.commit('lab/again.git', { 'b.ipynb': '{}\n' });
    const next = await services.builds.rebuild(ada, 'ada', first.imageId, undefined, []);
    expect(next.id).not.toBe(first.id);
    // Asked again while that build waits in the queue: the same build, which shows the commit it will build.
    expect(next.gitCommit).toBe(moved);
    expect((await services.builds.rebuild(ada, 'ada', first.imageId, undefined, [])).id).toBe(next.id);
    const waiting = await services.builds.create(ada, 'ada', request('again-three', 'lab/again.git'), []);
    expect(waiting).toMatchObject({ reused: true, build: { id: next.id } });
    const done = await services.run(next.id);
    expect(done.status).toBe('succeeded');
    expect(done.gitCommit).toBe(moved);
    expect(done.log).not.toMatch(/The branch moved/);
  });

  it('builds the newest commit of a branch that moved while the build waited, and says so', async () => {
    const asked = git.commit('lab/moving.git', { 'requirements.txt': 'ci-r2d-paper\n' });
    const { build: queued } = await services.builds.create(ada, 'ada', request('moving', 'lab/moving.git'), []);
    expect(queued.gitCommit).toBe(asked);
    const newer = git.commit('lab/moving.git', { 'later.ipynb': '{}\n' });
    const done = await services.run(queued.id);
    expect(done.status).toBe('succeeded');
    expect(done.gitCommit).toBe(newer);
    expect(done.log).toContain(`The branch moved since the build was requested (it was at ${asked.slice(0, 12)})`);
  });

  it('joins a waiting build only when it fetches the same ref: a commit id never gets the branch it moved to', async () => {
    const asked = git.commit('lab/join.git', { 'requirements.txt': 'ci-r2d-paper\n', 'marker.txt': 'the commit asked for\n' });
    const url = `${git.origin}/lab/join.git`;
    const { build: branch } = await services.builds.create(ada, 'ada', request('join-branch', 'lab/join.git'), []);
    expect(branch.gitCommit).toBe(asked);
    // The same commit by its id (as a launch link names it): its own build, which fetches exactly that commit.
    const pinned = await services.builds.create(ada, 'ada', { ...request('join-pinned', 'lab/join.git'), gitRef: asked }, []);
    expect(pinned.reused).toBeUndefined();
    expect(pinned.build.id).not.toBe(branch.id);
    // A rebuild of the waiting branch build with another description: the same build, the description kept.
    const again = await services.builds.rebuild(
      ada,
      'ada',
      branch.imageId,
      { mode: 'repository', gitUrl: url, system: 'default', description: 'the lab environment' },
      [],
    );
    expect(again.id).toBe(branch.id);
    expect((await db('images').where({ id: branch.imageId }).first()).description).toBe('the lab environment');

    git.commit('lab/join.git', { 'marker.txt': 'a later commit, never asked for by the pinned request\n' });
    const done = await services.run(pinned.build.id);
    expect(done.status).toBe('succeeded');
    expect(done.gitCommit).toBe(asked);
    expect(inImage(`${done.target}@${done.digest}`, 'cat "$REPO_DIR/marker.txt"')).toBe('the commit asked for\n');
  });

  it('a ref the repository does not have: 400 naming gitRef, nothing stored', async () => {
    git.commit('lab/refs.git', { 'requirements.txt': 'ci-r2d-paper\n' });
    const images = await db('images').count({ n: '*' }).first();
    const err = await services.builds
      .create(ada, 'ada', { ...request('no-such-ref', 'lab/refs.git'), gitRef: 'no-such-branch' }, [])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).fields.gitRef).toBe(
      'The repository has no branch or tag "no-such-branch": check the name, or give a commit id',
    );
    expect(await db('images').count({ n: '*' }).first()).toEqual(images);
  });

  it('a host the service does not trust, on a private address: refused in words, the listener sees no connection', async () => {
    let connections = 0;
    const listener = net.createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const port = (listener.address() as net.AddressInfo).port;
    const images = await db('images').count({ n: '*' }).first();
    const err = await services.builds
      .create(ada, 'ada', { name: 'untrusted', system: 'default', mode: 'repository', gitUrl: `https://127.0.0.1:${port}/lab/x.git` }, [])
      .catch((e: unknown) => e);
    await new Promise((r) => listener.close(r));
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).message).toMatch(/git host/);
    expect(connections).toBe(0);
    expect(await db('images').count({ n: '*' }).first()).toEqual(images);
  });
});
