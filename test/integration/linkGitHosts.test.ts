/**
 * A system's git hosts, and the refs a link names, against the real git
 * fetcher and git's http-backend on loopback (found by an attack on #24):
 * a repository on an allowed host that redirects elsewhere is refused at
 * the redirect, by the plan (a GET) and by the build's fetch alike; a full
 * commit id is asked about too, so that a private repository is refused by
 * the plan, not by a build that fails later.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitFetcher } from '../../server/builds/git.js';
import { LinkService } from '../../server/links/service.js';
import type { LinkStore } from '../../server/links/store.js';
import { createLogger } from '../../server/log.js';
import { NO_BUILDS } from '../../server/systems/schema.js';
import { WorkDir } from '../../server/workDir.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { testAccess, testUser } from '../support/identities.js';
import { testSystem } from '../support/systems.js';

const MiB = 1024 * 1024;
let git: GitServer;
let redirector: http.Server;
let redirectorHost: string;
let redirects = 0;
let dir: string;
let workDir: WorkDir;
let fetcher: GitFetcher;

beforeAll(async () => {
  git = await startGitServer();
  git.commit('lab/paper.git', { 'requirements.txt': 'numpy\n' });
  git.commit('private/paper.git', { 'requirements.txt': 'numpy\n' });
  // The allowed host: it sends every request on to the git server (another host:port).
  redirector = http.createServer((req, res) => {
    redirects++;
    res.writeHead(301, { Location: `${git.origin}${req.url ?? '/'}` }).end();
  });
  await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
  redirectorHost = `127.0.0.1:${(redirector.address() as { port: number }).port}`;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-link-hosts-'));
  workDir = WorkDir.open(path.join(dir, 'work'));
  fetcher = new GitFetcher({
    trustedHosts: [git.host, redirectorHost],
    maxBytes: 32 * MiB,
    checkout: { maxBytes: 64 * MiB, maxFiles: 1000, maxObjectBytes: 16 * MiB },
    workDir,
    timeoutMs: 30_000,
  });
});

afterAll(async () => {
  workDir?.close();
  await git?.stop();
  if (redirector) await new Promise((resolve) => redirector.close(resolve));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function links(gitHosts: string[] | undefined) {
  const system = testSystem({
    slug: 'dock',
    build: { ...NO_BUILDS, enabled: true, ...(gitHosts ? { gitHosts } : {}) },
  });
  return new LinkService({
    store: { imagesFrom: async () => [], nameTaken: async () => false } as unknown as LinkStore,
    // Only plans here: no launch is stored.
    launches: {} as never,
    access: testAccess,
    systems: { listEnabled: async () => [system] },
    git: fetcher,
    builds: {} as never,
    images: {} as never,
    hub: { serverState: async () => ({ state: 'none' as const }), startServer: async () => {}, stopServer: async () => {} },
    hubBaseUrl: '/',
    logger: createLogger('silent'),
    gitTimeoutMs: 10_000,
    buildTimeoutMs: 60_000,
  });
}

describe("a system's git hosts against a redirect", () => {
  it('the plan of a link to an allowed host never fetches from a host the system does not name', async () => {
    const before = git.requests.length;
    const planned = links([redirectorHost]).plan(testUser('ada'), {
      repo: `http://${redirectorHost}/lab/paper.git`,
      ref: 'main',
      system: 'dock',
      urlpath: '',
    });
    await planned.catch(() => undefined);
    expect(redirects).toBeGreaterThan(0);
    expect(git.requests.slice(before)).toEqual([]);
    await expect(planned).rejects.toThrow(/not among the hosts allowed/);
  });

  it("the build's fetch of an allowed host does not follow it to another host", async () => {
    const before = git.requests.length;
    // What runBuild does: the system's hosts go with the fetch, and every hop is held to them.
    const fetched = fetcher.fetch({
      url: `http://${redirectorHost}/lab/paper.git`,
      ref: 'main',
      username: '',
      token: undefined,
      signal: new AbortController().signal,
      hosts: [redirectorHost],
    });
    await expect(fetched).rejects.toThrow(/redirected to .* not among the hosts allowed/);
    expect(git.requests.slice(before)).toEqual([]);
  });
});

describe('a full commit id in a link', () => {
  it('a private repository is refused when the ref is a branch (holds)', async () => {
    await expect(
      links(undefined).plan(testUser('ada'), { repo: `${git.origin}/private/paper.git`, ref: 'main', system: 'dock', urlpath: '' }),
    ).rejects.toThrow(/public repositories only/);
  });

  it('a private repository is refused when the ref is a full commit id too', async () => {
    const before = git.requests.length;
    const planned = links(undefined).plan(testUser('ada'), {
      repo: `${git.origin}/private/paper.git`,
      ref: 'f'.repeat(40),
      system: 'dock',
      urlpath: '',
    });
    await expect(planned).rejects.toThrow(/public repositories only|no branch, tag or commit/);
    expect(git.requests.length).toBeGreaterThan(before);
  });
});
