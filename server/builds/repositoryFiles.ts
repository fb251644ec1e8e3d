/**
 * A checked-out repository as builds/repo2docker.ts reads it: files by path
 * from the top, never through a symbolic link (a link in the repository may
 * point anywhere on the service's disk), and each at most `maxBytes`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { upstream } from '../errors.js';
import { formatKiB } from '../format.js';
import type { RepositoryReader } from './repo2docker.js';

/** What `relative` is under `root`, no link followed on the way: undefined when missing or reached through a link. */
function entryOf(root: string, relative: string): fs.Stats | undefined {
  let current = root;
  let stat: fs.Stats | undefined;
  for (const part of relative.split('/')) {
    current = path.join(current, part);
    stat = fs.lstatSync(current, { throwIfNoEntry: false });
    if (!stat || stat.isSymbolicLink()) return undefined;
  }
  return stat;
}

/** A reader over the work tree at `root`; a configuration file larger than `maxBytes` fails the build in words. */
export function repositoryOnDisk(root: string, maxBytes: number): RepositoryReader {
  return {
    file(relative) {
      const stat = entryOf(root, relative);
      if (!stat?.isFile()) return undefined;
      if (stat.size > maxBytes)
        throw upstream('failed', `The repository's ${relative} has ${formatKiB(stat.size)}; at most ${formatKiB(maxBytes)} are read.`);
      return fs.readFileSync(path.join(root, relative), 'utf8');
    },
    isDirectory: (relative) => entryOf(root, relative)?.isDirectory() ?? false,
  };
}
