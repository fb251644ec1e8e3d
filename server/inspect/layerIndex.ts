/**
 * One layer's path index, read from its tar stream once: which paths it adds
 * (type, mode, link target, and the first bytes of the few files the analysis
 * reads), which it deletes (whiteouts) and which directories it makes opaque.
 * The layer itself is never kept.
 */
import { Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import tar from 'tar-stream';

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface Entry {
  type: EntryType;
  mode: number;
  /** Symlink or hardlink target. */
  link?: string;
  size: number;
  /** The first bytes (shebang) or the whole of a small file we read. */
  head?: string;
  /** Owner and group, kept only when not 0 (root), which most entries are. */
  uid?: number;
  gid?: number;
}

/** Bump when the shape changes, so that stored indexes are rebuilt. */
export const LAYER_INDEX_VERSION = 2;

export interface LayerIndex {
  version: number;
  entries: Record<string, Entry>;
  /** Paths deleted from lower layers (`.wh.NAME`). */
  whiteouts: string[];
  /** Directories whose lower contents are hidden (`.wh..wh..opq`). */
  opaque: string[];
  /** Bytes of the uncompressed tar. */
  tarBytes: number;
}

/** Files whose whole content (up to a bound) the analysis reads. */
const WHOLE_FILES = new Set(['/etc/passwd', '/etc/group']);
const WHOLE_FILE_LIMIT = 1024 * 1024;
/** Enough for a shebang line with a long interpreter path. */
const HEAD_BYTES = 256;

/**
 * Whether the analysis may want the start of this file: any executable (the
 * singleuser script may be reached through symlinks from any name), and
 * anything named jupyterhub-singleuser (to report one that is not executable).
 */
function wantsHead(path: string, mode: number): boolean {
  return (mode & 0o111) !== 0 || path.endsWith('/jupyterhub-singleuser');
}

/** `./usr/bin/` -> `/usr/bin`. */
export function normalizeTarPath(name: string): string {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}

function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** zstd decompression as a stream (fzstd: Node 20's zlib has none). */
class ZstdStream extends Transform {
  private readonly inner = new ZstdDecompress((data) => {
    this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  });

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    try {
      this.inner.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.inner.push(new Uint8Array(0), true);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }
}

/** The first bytes of a stream, put back so that the stream reads as before. */
async function peek(source: Readable, bytes: number): Promise<Buffer> {
  const seen: Buffer[] = [];
  let length = 0;
  for (;;) {
    const chunk = source.read() as Buffer | null;
    if (chunk !== null) {
      seen.push(chunk);
      length += chunk.length;
      if (length >= bytes) break;
      continue;
    }
    if (source.readableEnded || source.destroyed) break;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        source.off('readable', done);
        source.off('end', done);
        source.off('error', fail);
        resolve();
      };
      const fail = (err: Error) => {
        source.off('readable', done);
        source.off('end', done);
        reject(err);
      };
      source.once('readable', done);
      source.once('end', done);
      source.once('error', fail);
    });
    if (source.readableEnded) break;
  }
  const head = Buffer.concat(seen);
  if (head.length > 0) source.unshift(head);
  return head;
}

/**
 * Output chunk of the gunzip stream. Each chunk is one round trip between
 * zlib's worker thread and the main thread, and the main thread sets the
 * pace (it also hashes and untars). The bench's static check of 521 MB, five
 * interleaved runs each: 64 kB 2.96 s, 256 kB 2.30 s, 1 MB 2.10 s (median;
 * gzip -dc 1.9 s; the default 16 kB was slower still). Three layers read at
 * once hold 3 MB of it.
 */
const GUNZIP_CHUNK_BYTES = 1024 * 1024;

/** gzip and zstd by their magic bytes (media types are not always right), else plain tar. */
function decompressorFor(head: Buffer): Transform | undefined {
  if (head[0] === 0x1f && head[1] === 0x8b) return createGunzip({ chunkSize: GUNZIP_CHUNK_BYTES });
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return new ZstdStream();
  return undefined;
}

/** Counts bytes passing through. */
class Counter extends Transform {
  bytes = 0;
  constructor(private readonly onBytes?: (bytes: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    callback(null, chunk);
  }
}

/**
 * Reads a layer (gzip, zstd or plain tar) from `source` into its index.
 * `onBytes` is told the compressed bytes read so far, for progress.
 */
export async function indexLayer(source: Readable, onBytes?: (compressedBytes: number) => void): Promise<LayerIndex> {
  const index: LayerIndex = { version: LAYER_INDEX_VERSION, entries: {}, whiteouts: [], opaque: [], tarBytes: 0 };
  const extract = tar.extract();

  extract.on('entry', (header, stream, next) => {
    const path = normalizeTarPath(header.name);
    const base = path.slice(path.lastIndexOf('/') + 1);
    const finish = () => next();
    if (base.startsWith('.wh.')) {
      if (base === '.wh..wh..opq') index.opaque.push(dirname(path));
      else index.whiteouts.push(`${dirname(path) === '/' ? '' : dirname(path)}/${base.slice(4)}`);
      stream.on('end', finish);
      stream.resume();
      return;
    }
    const type: EntryType =
      header.type === 'file' || header.type === 'contiguous-file'
        ? 'file'
        : header.type === 'directory'
          ? 'dir'
          : header.type === 'symlink'
            ? 'symlink'
            : header.type === 'link'
              ? 'hardlink'
              : 'other';
    const entry: Entry = { type, mode: header.mode ?? 0, size: header.size ?? 0 };
    if (header.uid) entry.uid = header.uid;
    if (header.gid) entry.gid = header.gid;
    if (header.linkname) entry.link = type === 'hardlink' ? normalizeTarPath(header.linkname) : header.linkname;
    index.entries[path] = entry;

    const limit = type === 'file' && entry.size > 0 ? (WHOLE_FILES.has(path) ? WHOLE_FILE_LIMIT : wantsHead(path, entry.mode) ? HEAD_BYTES : 0) : 0;
    if (limit === 0) {
      stream.on('end', finish);
      stream.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let kept = 0;
    stream.on('data', (data: unknown) => {
      const chunk = data as Buffer;
      if (kept < limit) {
        const part = chunk.subarray(0, limit - kept);
        chunks.push(part);
        kept += part.length;
      }
    });
    stream.on('end', () => {
      const head = Buffer.concat(chunks).toString('latin1');
      // Only a script's first line matters; of a binary (most executables), its magic number.
      entry.head = WHOLE_FILES.has(path) || head.startsWith('#!') ? head : head.slice(0, 4);
      finish();
    });
  });

  const head = await peek(source, 4);
  const decompress = decompressorFor(head);
  const compressed = new Counter(onBytes);
  const uncompressed = new Counter();
  if (decompress) await pipeline(source, compressed, decompress, uncompressed, extract);
  else await pipeline(source, compressed, uncompressed, extract);
  index.tarBytes = uncompressed.bytes;
  return index;
}

/** A sink for tests and benchmarks that only need the bytes read. */
export function discard(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}
