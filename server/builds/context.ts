/**
 * A build context as the engine takes it: a tar of the uploaded files or the
 * repository's work tree (without .git: history and remotes stay out of every
 * layer), plus the Dockerfile under a name of its own, so that a Dockerfile
 * in the repository is neither overwritten nor built by mistake.
 */
import fs from 'node:fs';
import path from 'node:path';
import type tar from 'tar-stream';
import { tarball } from '../io/tarball.js';
import type { UploadedFile } from './recipe.js';

/** Where the context holds the Dockerfile that is built (the build API's `dockerfile`). */
export const CONTEXT_DOCKERFILE = '.custom-images.Dockerfile';

/** Packs the context; `tree` is a folder (a git work tree) whose files go in beside the uploads. */
export function buildContext(dockerfile: string, files: UploadedFile[], tree?: string): Promise<Buffer> {
  // Fixed times and modes: unchanged inputs give an unchanged context, and the engine's layer cache holds.
  const mtime = new Date(0);
  return tarball((pack) => {
    pack.entry({ name: CONTEXT_DOCKERFILE, mode: 0o644, mtime }, dockerfile);
    for (const file of files) pack.entry({ name: file.name, mode: 0o644, mtime }, file.content);
    if (tree) addTree(pack, tree, '', mtime);
  });
}

function addTree(pack: tar.Pack, root: string, relative: string, mtime: Date): void {
  for (const entry of fs.readdirSync(path.join(root, relative), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const name = relative ? `${relative}/${entry.name}` : entry.name;
    if (name === '.git' || name === CONTEXT_DOCKERFILE) continue;
    const full = path.join(root, name);
    if (entry.isDirectory()) {
      pack.entry({ name, type: 'directory', mode: 0o755, mtime });
      addTree(pack, root, name, mtime);
    } else if (entry.isSymbolicLink()) {
      pack.entry({ name, type: 'symlink', linkname: fs.readlinkSync(full), mode: 0o777, mtime });
    } else if (entry.isFile()) {
      const executable = (fs.statSync(full).mode & 0o111) !== 0;
      pack.entry({ name, mode: executable ? 0o755 : 0o644, mtime }, fs.readFileSync(full));
    }
  }
}

/** Uploaded files as stored with a build (a rebuild and a restarted build read them back). */
export function packFiles(files: UploadedFile[]): Buffer {
  return Buffer.from(JSON.stringify(files.map((f) => ({ name: f.name, content: f.content.toString('base64') }))));
}

export function unpackFiles(stored: Buffer): UploadedFile[] {
  return (JSON.parse(stored.toString('utf8')) as Array<{ name: string; content: string }>).map((f) => ({
    name: f.name,
    content: Buffer.from(f.content, 'base64'),
  }));
}
