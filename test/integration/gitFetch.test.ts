/**
 * The git fetcher against git's own http-backend on loopback, without an
 * engine: the default branch, a branch, an annotated tag and an abbreviated
 * commit each check out what they name (the pack written to disk as it
 * arrives, then indexed), a ref the repository lacks is refused in words,
 * and a fetch leaves nothing in the work directory but the checkout it hands
 * over.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitFetcher } from '../../server/builds/git.js';
import { WorkDir } from '../../server/workDir.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';

const MiB = 1024 * 1024;
let git: GitServer;
let dir: string;
let workDir: WorkDir;
let fetcher: GitFetcher;
const commits: Record<string, string> = {};

beforeAll(async () => {
  git = await startGitServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-git-fetch-'));
  workDir = WorkDir.open(path.join(dir, 'work'));
  fetcher = new GitFetcher({
    trustedHosts: [git.host],
    maxBytes: 32 * MiB,
    checkout: { maxBytes: 64 * MiB, maxFiles: 1000, maxObjectBytes: 16 * MiB },
    workDir,
    timeoutMs: 30_000,
  });
  commits.first = git.commit('lab/refs.git', { 'which.txt': 'first\n', 'run.sh': '#!/bin/sh\necho run\n' });
  git.git('lab/refs.git', ['tag', '-a', 'v1', '-m', 'version 1']);
  git.git('lab/refs.git', ['checkout', '-q', '-b', 'feature']);
  commits.feature = git.commit('lab/refs.git', { 'which.txt': 'feature\n' });
  git.git('lab/refs.git', ['checkout', '-q', 'main']);
  commits.main = git.commit('lab/refs.git', { 'which.txt': 'main\n' });
});

afterAll(async () => {
  workDir?.close();
  await git?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const fetchAt = (ref: string) =>
  fetcher.fetch({ url: `${git.origin}/lab/refs.git`, ref, username: '', token: undefined, signal: new AbortController().signal });

describe('GitFetcher', () => {
  it.each([
    ['the default branch', '', 'main', 'main'],
    ['a branch', 'feature', 'feature', 'feature'],
    ['an annotated tag', 'v1', 'first', 'first'],
    ['an abbreviated commit', () => commits.first!.slice(0, 8), 'first', 'first'],
  ])('checks out %s', async (_what, ref, content, commit) => {
    const fetched = await fetchAt(typeof ref === 'function' ? ref() : ref);
    try {
      expect(fetched.commit).toBe(commits[commit]);
      expect(fs.readFileSync(path.join(fetched.dir, 'which.txt'), 'utf8')).toBe(`${content}\n`);
      expect(
        fs.readdirSync(path.join(fetched.dir, '.git', 'objects', 'pack')).filter((f) => !/^pack-[0-9a-f]{40}\.(pack|idx)$/.test(f)),
      ).toEqual([]);
      expect(fs.readdirSync(workDir.folder)).toEqual([path.basename(fetched.dir)]);
    } finally {
      workDir.remove(fetched.dir);
    }
  });

  it('refuses a ref the repository does not have, in words, and leaves nothing', async () => {
    await expect(fetchAt('no-such-branch')).rejects.toThrow('The repository has no branch, tag or commit "no-such-branch".');
    expect(fs.readdirSync(workDir.folder)).toEqual([]);
  });
});
