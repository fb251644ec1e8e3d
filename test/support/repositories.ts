/**
 * Repositories an attacker would serve, written with git's plumbing
 * (hash-object, mktree, commit-tree) into a test git server: a pack of a few
 * kilobytes whose checkout is as large as the test wants.
 */
import fs from 'node:fs';
import type { GitServer } from './gitServer.js';

export interface FanOut {
  /** The one blob every leaf entry names. */
  blob: Buffer;
  /** Entries per tree. */
  width: number;
  /** Levels of trees: the checkout holds width^depth copies of the blob. */
  depth: number;
  /** Other files at the top (a Dockerfile, say). */
  files?: Record<string, string>;
}

/**
 * Commits to `repo`'s main branch a tree in which one blob is named
 * width^depth times (under `bomb/`), beside `files`; returns the commit id.
 */
export function fanOutRepository(git: GitServer, repo: string, spec: FanOut): string {
  const hash = (content: Buffer | string) => git.git(repo, ['hash-object', '-w', '--stdin'], content);
  const mktree = (entries: string[]) => git.git(repo, ['mktree'], `${entries.join('\n')}\n`);
  const names = Array.from({ length: spec.width }, (_, i) => String(i).padStart(4, '0'));
  const blob = hash(spec.blob);
  let tree = mktree(names.map((n) => `100644 blob ${blob}\tf${n}`));
  for (let level = 1; level < spec.depth; level++) tree = mktree(names.map((n) => `040000 tree ${tree}\td${n}`));
  const top = [`040000 tree ${tree}\tbomb`];
  for (const [name, content] of Object.entries(spec.files ?? {})) top.push(`100644 blob ${hash(content)}\t${name}`);
  const commit = git.git(repo, ['commit-tree', mktree(top), '-m', 'a small pack, a large checkout']);
  git.git(repo, ['update-ref', 'refs/heads/main', commit]);
  git.git(repo, ['symbolic-ref', 'HEAD', 'refs/heads/main']);
  return commit;
}

/** The size of the pack a clone of `repo` receives (what the attacker sends), in bytes. */
export function packBytes(git: GitServer, repo: string): number {
  const gitDir = git.git(repo, ['rev-parse', '--absolute-git-dir']);
  const objects = git.git(repo, ['rev-list', '--objects', '--all']);
  const ids = objects.split('\n').map((line) => line.split(' ')[0]);
  const sha = git.git(repo, ['pack-objects', '-q', `${gitDir}/measure`], `${ids.join('\n')}\n`);
  const file = `${gitDir}/measure-${sha}.pack`;
  const size = fs.statSync(file).size;
  fs.rmSync(file);
  fs.rmSync(file.replace(/\.pack$/, '.idx'), { force: true });
  return size;
}
