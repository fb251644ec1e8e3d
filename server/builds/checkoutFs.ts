/**
 * The file system isomorphic-git writes a build's checkout through: every
 * path must lie inside the checkout's folder, what the work tree gets is
 * counted as it is written (bytes and entries) and refused past the limits,
 * and a pack is checked before isomorphic-git inflates anything of it, when
 * it is written or first read (builds/pack.ts: no object inflates past the
 * largest file allowed). Counting what is
 * written, not what was received, is what holds against a small pack whose
 * checkout is large.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { checkPack } from './pack.js';

export interface CheckoutLimits {
  /** Bytes the work tree may receive (files and link targets). */
  maxBytes: number;
  /** Entries (files, folders, links) the work tree may receive. */
  maxFiles: number;
  /** The largest object the repository may hold, inflated. */
  maxObjectBytes: number;
}

/** The work tree would be larger than a limit allows: `limit` says which (bytes, entries, or folders nested). */
export class CheckoutTooLarge extends Error {
  constructor(
    readonly limit: 'bytes' | 'files' | 'depth',
    readonly max: number,
  ) {
    super(`a checkout of more than ${max} ${limit === 'depth' ? 'nested folders' : limit}`);
    this.name = 'CheckoutTooLarge';
  }
}

/** What a checkout has written to its work tree so far. */
export interface CheckoutCount {
  bytes: number;
  files: number;
}

type Data = string | Uint8Array;
type WriteOptions = { encoding?: BufferEncoding; mode?: number } | BufferEncoding | undefined;

const PACK = /\/\.git\/objects\/pack\/pack-[0-9a-f]+\.pack$/;

/** isomorphic-git's `fs` contract (its promise form) over `root`, bounded by `limits`. */
export function checkoutFs(root: string, limits: CheckoutLimits) {
  const top = path.resolve(root);
  const gitDir = path.join(top, '.git');
  const written: CheckoutCount = { bytes: 0, files: 0 };
  // Once refused, always refused: isomorphic-git retries a failed write after making its folder.
  let refused: CheckoutTooLarge | undefined;
  /** Packs checked already (isomorphic-git reads a pack again to check out). */
  const checked = new Set<string>();
  const checkOnce = async (full: string, data: Uint8Array) => {
    if (checked.has(full)) return;
    await checkPack(data, limits.maxObjectBytes);
    checked.add(full);
  };

  const inside = (p: unknown): string => {
    if (typeof p !== 'string') throw new TypeError('a path is required');
    const full = path.resolve(p);
    if (full !== top && !full.startsWith(top + path.sep)) throw new Error(`${p} is outside the checkout`);
    return full;
  };
  const inWorkTree = (full: string) => full !== gitDir && !full.startsWith(gitDir + path.sep);
  /** Refuses an entry of `bytes` that would take the work tree past a limit; `commit` counts it once written. */
  const admit = (full: string, bytes: number): (() => void) => {
    if (refused) throw refused;
    if (!inWorkTree(full)) return () => undefined;
    if (written.files + 1 > limits.maxFiles) throw (refused = new CheckoutTooLarge('files', limits.maxFiles));
    if (written.bytes + bytes > limits.maxBytes) throw (refused = new CheckoutTooLarge('bytes', limits.maxBytes));
    return () => {
      written.files += 1;
      written.bytes += bytes;
    };
  };
  const sizeOf = (data: Data, options: WriteOptions) =>
    typeof data === 'string'
      ? Buffer.byteLength(data, typeof options === 'string' ? options : (options?.encoding ?? 'utf8'))
      : data.byteLength;

  return {
    written,
    async readFile(p: string, options?: { encoding?: BufferEncoding } | BufferEncoding) {
      const full = inside(p);
      const data = await fsp.readFile(full, options);
      if (!PACK.test(full) || typeof data === 'string') return data;
      // A pack fetched to disk is checked when isomorphic-git first reads it (to index it), before it inflates anything.
      await checkOnce(full, data);
      // isomorphic-git copies what it reads into a Buffer (Buffer.from), which for a pack is the largest copy of all;
      // from an ArrayBuffer, Buffer.from makes a view instead.
      return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data.buffer : data;
    },
    async writeFile(p: string, data: Data, options?: WriteOptions) {
      const full = inside(p);
      if (PACK.test(full) && typeof data !== 'string') await checkOnce(full, data);
      const commit = admit(full, sizeOf(data, options));
      await fsp.writeFile(full, data, options);
      commit();
    },
    async mkdir(p: string, options?: { recursive?: boolean; mode?: number }) {
      const full = inside(p);
      const commit = admit(full, 0);
      await fsp.mkdir(full, options);
      commit();
    },
    async symlink(target: string, p: string) {
      const full = inside(p);
      const commit = admit(full, Buffer.byteLength(target));
      await fsp.symlink(target, full);
      commit();
    },
    async rmdir(p: string) {
      return fsp.rmdir(inside(p));
    },
    async rm(p: string, options?: { recursive?: boolean; force?: boolean }) {
      return fsp.rm(inside(p), options);
    },
    async unlink(p: string) {
      return fsp.unlink(inside(p));
    },
    async stat(p: string) {
      return fsp.stat(inside(p));
    },
    async lstat(p: string) {
      return fsp.lstat(inside(p));
    },
    async readdir(p: string) {
      return fsp.readdir(inside(p));
    },
    async readlink(p: string) {
      return fsp.readlink(inside(p));
    },
  };
}
