/**
 * A repository build from a directory of the repository (issue #27), with a
 * real Docker engine, a registry and a git smart-HTTP server on loopback:
 * `docker/Dockerfile` built with `docker` as the context (its files only,
 * never the rest of the repository or .git), and the directories that must
 * be refused with 400 naming the field, nothing stored or built: `..`, an
 * absolute path (both before the git host hears of it), a symbolic link
 * pointing out of the repository, a link anywhere on the path, a missing
 * directory; the job's second look, when the branch moved after the build
 * was submitted; and one lookup at a time per owner.
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
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { testUser } from '../support/identities.js';
import { debianBuildBase } from '../support/buildRegistry.js';
import { testSystem } from '../support/systems.js';

/** The Debian base with JupyterHub, in the suite's build registry (test/support/buildRegistry.ts), and its registry. */
let base: string;
let registry: string;
let git: GitServer;
let db: Knex;
let dir: string;
let services: BuildServices;
let steps: PidsCgroup;
const ada = testUser('ada');
const REPO = 'lab/with-directory.git';

/** Adds a symbolic link `name` -> `target` to the repository and commits it. */
function commitLink(repo: string, name: string, target: string): void {
  const top = git.git(repo, ['rev-parse', '--show-toplevel']);
  fs.symlinkSync(target, path.join(top, name));
  git.git(repo, ['add', '-A']);
  git.git(repo, ['commit', '-q', '-m', `link ${name}`]);
}

const request = (name: string, gitDirectory: string) => ({
  name,
  system: 'default',
  mode: 'dockerfile',
  gitUrl: `${git.origin}/${REPO}`,
  gitDirectory,
});

beforeAll(async () => {
  git = await startGitServer();
  ({ image: base, registry } = await debianBuildBase('directory/debian'));
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-build-directory-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  steps = await pidsCgroup(ciDocker(), `ci-build-directory-${process.pid}`, 512);
  services = buildServices(db, {
    keyring: await createKeyring([new Uint8Array(32).fill(9)]),
    trustedRegistries: [registry],
    trustedGitHosts: [git.host],
    systems: [
      testSystem({
        slug: 'default',
        allowedRegistries: [`${registry}/directory/*`],
        build: { enabled: true, pushTo: `${registry}/directory/built`, network: 'host', baseImages: [] },
      }),
    ],
    timeoutMs: 120_000,
    cgroupParent: steps.parent,
    workDir: WorkDir.open(path.join(dir, 'work')),
  });
  git.commit(REPO, {
    'top.txt': 'at the top: not in the context\n',
    'docker/Dockerfile': `FROM ${base}\nCOPY beside.txt /beside.txt\nCOPY . /context/\n`,
    'docker/beside.txt': 'beside the Dockerfile\n',
  });
  // A link out of the repository, and a link on the path that stays inside it: both refused.
  commitLink(REPO, 'outside', '/etc');
  commitLink(REPO, 'via-link', '.');
}, 300_000);

afterAll(async () => {
  await steps?.remove();
  services?.workDir.close();
  await db?.destroy();
  await git?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('a repository build from a directory', { timeout: 300_000 }, () => {
  it("builds docker/Dockerfile with docker as the context: its files are in the image, the repository's top is not", async () => {
    const { build } = await services.builds.create(ada, 'ada', request('from-directory', 'docker/'), []);
    expect((await services.store.get(build.id))?.inputs.gitDirectory).toBe('docker');
    const done = await services.run(build.id);
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.log).toMatch(/Building the repository's Dockerfile in docker/);
    const run = (...args: string[]) => execFileSync('docker', ['run', '--rm', '--network', 'none', done.target, ...args]).toString();
    expect(run('cat', '/beside.txt')).toBe('beside the Dockerfile\n');
    const context = run('ls', '-A', '/context').split('\n');
    expect(context).toContain('beside.txt');
    expect(context).toContain('Dockerfile');
    expect(context).not.toContain('top.txt');
    expect(context).not.toContain('.git');
    expect(context).not.toContain('outside');
  });

  it.each<[string, string, RegExp, boolean]>([
    ['a path that leaves the repository', '../outside', /may not leave the repository/, false],
    ['an absolute path', '/etc', /not an absolute one/, false],
    ['a symbolic link pointing out of the repository', 'outside', /outside is a symbolic link/, true],
    ['a symbolic link on the path, even one inside the repository', 'via-link/docker', /via-link is a symbolic link/, true],
    ['a directory the repository does not have', 'envs/gpu', /has no directory envs at commit/, true],
  ])('refuses %s with 400 naming gitDirectory, nothing stored or built', async (_what, directory, message, asksTheRepository) => {
    const images = await db('images').count({ n: '*' }).first();
    const builds = await db('builds').count({ n: '*' }).first();
    const seen = git.requests.length;
    const err = await services.builds.create(ada, 'ada', request(`refused-${Date.now()}`, directory), []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(400);
    expect((err as AppError).fields.gitDirectory).toMatch(message);
    expect(await db('images').count({ n: '*' }).first()).toEqual(images);
    expect(await db('builds').count({ n: '*' }).first()).toEqual(builds);
    // The syntax is refused before the git host hears of the build; the rest is read from its tree.
    if (asksTheRepository) expect(git.requests.length).toBeGreaterThan(seen);
    else expect(git.requests.length).toBe(seen);
    // The submission's fetch leaves nothing in the work directory.
    expect(fs.readdirSync(services.workDir.folder)).toEqual([]);
  });

  it('looks again in the job: a branch that lost the directory after submission fails the build, naming the field', async () => {
    const repo = 'lab/moving-directory.git';
    git.commit(repo, { 'docker/Dockerfile': `FROM ${base}\n` });
    const { build } = await services.builds.create(
      ada,
      'ada',
      { ...request('moved-directory', 'docker'), gitUrl: `${git.origin}/${repo}` },
      [],
    );
    // The branch moves: docker/ becomes a link out of the repository.
    git.git(repo, ['rm', '-rq', 'docker']);
    commitLink(repo, 'docker', '/etc');
    const done = await services.run(build.id);
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/gitDirectory: docker is a symbolic link/);
  });

  it('looks up one directory at a time per owner: a second request meanwhile is a 429 the git host never hears of', async () => {
    // A git host that accepts connections and never answers: the first lookup waits there until its time limit.
    const sockets: net.Socket[] = [];
    const stalled = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(stalled.address() as net.AddressInfo).port}`;
    const slow = buildServices(db, {
      keyring: await createKeyring([new Uint8Array(32).fill(9)]),
      trustedRegistries: [registry],
      trustedGitHosts: [host],
      systems: [
        testSystem({
          slug: 'default',
          allowedRegistries: [`${registry}/directory/*`],
          build: { enabled: true, pushTo: `${registry}/directory/built`, network: 'host', baseImages: [] },
        }),
      ],
      timeoutMs: 3000,
      cgroupParent: steps.parent,
      workDir: services.workDir,
    });
    const ask = (name: string) =>
      slow.builds
        .create(ada, 'ada', { ...request(name, 'docker'), gitUrl: `http://${host}/lab/env.git` }, [])
        .catch((e: unknown) => e as AppError);
    try {
      const first = ask('first-lookup');
      while (sockets.length === 0) await new Promise((r) => setTimeout(r, 20));
      const second = await ask('second-lookup');
      expect(second).toBeInstanceOf(AppError);
      expect((second as AppError).status).toBe(429);
      expect(sockets).toHaveLength(1);
      // The first ends at its time limit as the git host's failure; nothing of either is stored.
      const ended = await first;
      expect(ended).toBeInstanceOf(AppError);
      expect((ended as AppError).code).toMatch(/^upstream_/);
      expect(await db('images').whereIn('name', ['first-lookup', 'second-lookup']).count({ n: '*' }).first()).toEqual({ n: 0 });
      // Once it has answered, the owner may ask again.
      const third = ask('third-lookup');
      while (sockets.length < 2) await new Promise((r) => setTimeout(r, 20));
      expect(await third).toBeInstanceOf(AppError);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => stalled.close(resolve));
    }
  });
});
