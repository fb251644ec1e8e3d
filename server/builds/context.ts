/**
 * A build context as the engine takes it: a tar of the uploaded files or the
 * repository's work tree (without .git: history and remotes stay out of every
 * layer), plus the Dockerfile under a name of its own, so that a Dockerfile
 * in the repository is neither overwritten nor built by mistake.
 *
 * The tar streams from disk as the engine reads it (a repository's work tree
 * may be hundreds of megabytes; the service holds one chunk at a time), and
 * its size is known before the first byte goes: a context over the limit is
 * refused in words, never cut off half-sent.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { upstream } from '../errors.js';
import { formatMiB } from '../format.js';

/** Where the context holds the Dockerfile that is built (the build API's `dockerfile`). */
export const CONTEXT_DOCKERFILE = '.custom-images.Dockerfile';

/** A file of the context given whole (an upload, read from the database). */
export interface ContextFile {
  name: string;
  content: Buffer;
}

const DOCKERIGNORE = '.dockerignore';
/** The most of a repository's own .dockerignore that is read. */
const DOCKERIGNORE_MAX_BYTES = 64 * 1024;

/**
 * The context's .dockerignore: the repository's own (a regular file at its
 * top) with the service's Dockerfile added, so that `COPY . …` never puts
 * that file in an image; without one, ours names itself too.
 */
function dockerignore(tree: string | undefined): Buffer {
  const own = tree ? path.join(tree, DOCKERIGNORE) : '';
  const stat = own ? fs.lstatSync(own, { throwIfNoEntry: false }) : undefined;
  if (stat?.isFile() && stat.size <= DOCKERIGNORE_MAX_BYTES)
    return Buffer.from(`${fs.readFileSync(own, 'utf8').replace(/\n?$/, '\n')}${CONTEXT_DOCKERFILE}\n`);
  return Buffer.from(`${CONTEXT_DOCKERFILE}\n${DOCKERIGNORE}\n`);
}

/** One entry of a work tree, as the tar will hold it. */
interface TreeEntry {
  name: string;
  full: string;
  type: 'directory' | 'symlink' | 'file';
  size: number;
  mode: number;
  linkname?: string;
}

const BLOCK = 512;
const roundUp = (bytes: number) => Math.ceil(bytes / BLOCK) * BLOCK;

/**
 * The most an entry takes in the tar: its header, a PAX header where a name
 * or link target does not fit the plain one (long or not ASCII), its content
 * in whole blocks.
 */
function tarBytes(name: string, size: number, linkname = ''): number {
  const long = Buffer.byteLength(name) > 100 || Buffer.byteLength(linkname) > 100 || /[^\x20-\x7e]/.test(name + linkname);
  const pax = long ? BLOCK + roundUp(64 + 2 * (Buffer.byteLength(name) + Buffer.byteLength(linkname))) : 0;
  return BLOCK + pax + roundUp(size);
}

/**
 * Packs the context as a stream read from disk; `tree` is a folder (a git
 * work tree) whose files go in beside the uploads. Fixed times and modes:
 * unchanged inputs give a byte-identical context, and the engine's layer
 * cache holds.
 *
 * @throws AppError when the context would be larger than `maxBytes`, before anything is sent.
 */
export function buildContext(dockerfile: string, uploads: ContextFile[], tree: string | undefined, maxBytes: number): Readable {
  // An uploaded .dockerignore is the researcher's own, taken as it is.
  const ignore = uploads.some((f) => f.name === DOCKERIGNORE) ? undefined : dockerignore(tree);
  const entries = (tree ? treeEntries(tree) : []).filter((e) => !(ignore && e.name === DOCKERIGNORE));
  const files = ignore ? [...uploads, { name: DOCKERIGNORE, content: ignore }] : uploads;
  // The end of a tar is two empty blocks.
  let bytes = 2 * BLOCK + tarBytes(CONTEXT_DOCKERFILE, Buffer.byteLength(dockerfile));
  for (const file of files) bytes += tarBytes(file.name, file.content.length);
  for (const entry of entries) bytes += tarBytes(entry.name, entry.size, entry.linkname);
  if (bytes > maxBytes) {
    throw upstream(
      'failed',
      `The build context is larger than ${formatMiB(maxBytes)} (CUSTOM_IMAGES_BUILD_CONTEXT_MAX_MB): ${formatMiB(bytes)} with the repository's files. Build from a smaller repository.`,
    );
  }
  const mtime = new Date(0);
  const pack = tar.pack();
  const fill = async () => {
    pack.entry({ name: CONTEXT_DOCKERFILE, mode: 0o644, mtime }, dockerfile);
    for (const file of files) pack.entry({ name: file.name, mode: 0o644, mtime }, file.content);
    for (const entry of entries) {
      if (entry.type === 'directory') pack.entry({ name: entry.name, type: 'directory', mode: entry.mode, mtime });
      else if (entry.type === 'symlink')
        pack.entry({ name: entry.name, type: 'symlink', linkname: entry.linkname, mode: entry.mode, mtime });
      else await streamFile(pack, entry, mtime);
    }
    pack.finalize();
  };
  fill().catch((err: unknown) => pack.destroy(err as Error));
  // A Node stream for the engine's client; destroying it (the build ended early) ends the tar and closes its files.
  return Readable.from(pack);
}

/** One file of the tree into the tar, a chunk at a time, at the pace the engine reads. */
async function streamFile(pack: tar.Pack, entry: TreeEntry, mtime: Date): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    const sink = pack.entry({ name: entry.name, size: entry.size, mode: entry.mode, mtime }, (err) => (err ? reject(err) : resolve()));
    const source = fs.createReadStream(entry.full);
    (async () => {
      for await (const chunk of source) {
        if (!sink.write(chunk as Buffer)) await new Promise<void>((drained) => sink.once('drain', () => drained()));
      }
      sink.end(null);
    })().catch((err: unknown) => {
      source.destroy();
      sink.destroy(err as Error);
    });
  });
  await done;
}

/** The work tree's entries in a fixed order (by name, depth first), without the top's .git and our Dockerfile's name. */
function treeEntries(root: string): TreeEntry[] {
  const entries: TreeEntry[] = [];
  const walk = (relative: string) => {
    const listed = fs.readdirSync(path.join(root, relative), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of listed) {
      const name = relative ? `${relative}/${entry.name}` : entry.name;
      if (name === '.git' || name === CONTEXT_DOCKERFILE) continue;
      const full = path.join(root, name);
      if (entry.isDirectory()) {
        entries.push({ name, full, type: 'directory', size: 0, mode: 0o755 });
        walk(name);
      } else if (entry.isSymbolicLink()) {
        entries.push({ name, full, type: 'symlink', size: 0, mode: 0o777, linkname: fs.readlinkSync(full) });
      } else if (entry.isFile()) {
        const stat = fs.lstatSync(full);
        entries.push({ name, full, type: 'file', size: stat.size, mode: stat.mode & 0o111 ? 0o755 : 0o644 });
      }
    }
  };
  walk('');
  return entries;
}
