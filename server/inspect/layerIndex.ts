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
import { CAPTURE_LAYER_BYTES, collectorFor, type Captured } from './capture.js';

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
  /** What the package inventory keeps of this file (server/inspect/capture.ts). */
  captured?: Captured;
}

/** Bump when the shape changes, so that stored indexes are rebuilt. */
export const LAYER_INDEX_VERSION = 3;

export interface LayerIndex {
  version: number;
  entries: Record<string, Entry>;
  /** Paths deleted from lower layers (`.wh.NAME`). */
  whiteouts: string[];
  /** Directories whose lower contents are hidden (`.wh..wh..opq`). */
  opaque: string[];
  /** Bytes of the uncompressed tar. */
  tarBytes: number;
  /** Files the inventory wanted but did not keep: the layer's captures were at their bound. */
  uncaptured?: number;
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
 * pace (it also hashes and untars), so fewer, larger chunks are faster
 * (bench/README.md). Three layers read at once hold 3 MB of it.
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
    try {
      this.onBytes?.(this.bytes);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback(null, chunk);
  }
}

/** How much a check unpacks, per layer and per image: a few compressed bytes can expand without end. */
export interface UnpackLimits {
  layerEntries: number;
  layerBytes: number;
  imageEntries: number;
  imageBytes: number;
}

/** The limits for images of at most `maxImageBytes` compressed: four times that unpacked, two per layer. */
export function unpackLimits(maxImageBytes: number): UnpackLimits {
  return { layerEntries: 1_000_000, imageEntries: 2_000_000, layerBytes: 2 * maxImageBytes, imageBytes: 4 * maxImageBytes };
}

/** What is left of an image's allowance; the layers of one check share it (they are read at once). */
export interface UnpackAllowance {
  entries: number;
  bytes: number;
}

/** A layer or image unpacks to more than the limits allow. */
export class UnpackLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnpackLimitError';
  }
}

/** Counts a layer's entries and bytes against its own limit and the image's allowance. */
class UnpackMeter {
  private entries = 0;
  private bytes = 0;

  constructor(
    private readonly limits: UnpackLimits,
    private readonly image: UnpackAllowance,
  ) {}

  entry(): void {
    this.entries++;
    this.image.entries--;
    if (this.entries > this.limits.layerEntries)
      throw new UnpackLimitError(
        `A layer has more than ${this.limits.layerEntries.toLocaleString('en')} files; larger ones are not checked.`,
      );
    if (this.image.entries < 0)
      throw new UnpackLimitError(
        `The image has more than ${this.limits.imageEntries.toLocaleString('en')} files in its layers; larger ones are not checked.`,
      );
  }

  unpacked(bytes: number): void {
    this.bytes += bytes;
    this.image.bytes -= bytes;
    if (this.bytes > this.limits.layerBytes)
      throw new UnpackLimitError(`A layer unpacks to more than ${formatSize(this.limits.layerBytes)}; larger ones are not checked.`);
    if (this.image.bytes < 0)
      throw new UnpackLimitError(`The image unpacks to more than ${formatSize(this.limits.imageBytes)}; larger ones are not checked.`);
  }
}

function formatSize(bytes: number): string {
  return bytes >= 1e9 ? `${Math.round(bytes / 1e9)} GB` : bytes >= 1e6 ? `${Math.round(bytes / 1e6)} MB` : `${bytes} bytes`;
}

/** Reading limits for one layer: its own, and what is left of its image's. */
export interface LayerBounds {
  limits: UnpackLimits;
  image: UnpackAllowance;
}

/**
 * Reads a layer (gzip, zstd or plain tar) from `source` into its index.
 * `onBytes` is told the compressed bytes read so far, for progress; `bounds`
 * stop a layer that unpacks to too many files or bytes.
 */
export async function indexLayer(
  source: Readable,
  onBytes?: (compressedBytes: number) => void,
  bounds?: LayerBounds,
  options: { capture?: boolean } = {},
): Promise<LayerIndex> {
  const index: LayerIndex = { version: LAYER_INDEX_VERSION, entries: {}, whiteouts: [], opaque: [], tarBytes: 0 };
  const extract = tar.extract();
  const meter = bounds ? new UnpackMeter(bounds.limits, bounds.image) : undefined;
  const capture = options.capture ?? true;
  let captureLeft = CAPTURE_LAYER_BYTES;

  extract.on('entry', (header, stream, next) => {
    // A failure ends the whole extraction (and reaches the caller through it); the entry's own
    // stream then errors too, which must not go unhandled.
    stream.on('error', () => undefined);
    try {
      meter?.entry();
    } catch (err) {
      next(err as Error);
      return;
    }
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

    const limit =
      type === 'file' && entry.size > 0 ? (WHOLE_FILES.has(path) ? WHOLE_FILE_LIMIT : wantsHead(path, entry.mode) ? HEAD_BYTES : 0) : 0;
    // The inventory's files are read as they pass, like the heads: no second pass over the layer.
    const collector = capture && type === 'file' && entry.size > 0 ? collectorFor(path) : undefined;
    if (limit === 0 && !collector) {
      stream.on('end', finish);
      stream.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let kept = 0;
    stream.on('data', (data: unknown) => {
      const chunk = data as Buffer;
      collector?.write(chunk);
      if (kept < limit) {
        const part = chunk.subarray(0, limit - kept);
        chunks.push(part);
        kept += part.length;
      }
    });
    stream.on('end', () => {
      if (limit > 0) {
        const head = Buffer.concat(chunks).toString('latin1');
        // Only a script's first line matters; of a binary (most executables), its magic number.
        entry.head = WHOLE_FILES.has(path) || head.startsWith('#!') ? head : head.slice(0, 4);
      }
      if (collector) {
        const { captured, size } = collector.end();
        if (size <= captureLeft) {
          captureLeft -= size;
          entry.captured = captured;
        } else index.uncaptured = (index.uncaptured ?? 0) + 1;
      }
      finish();
    });
  });

  const head = await peek(source, 4);
  const decompress = decompressorFor(head);
  const compressed = new Counter(onBytes);
  let counted = 0;
  const uncompressed = new Counter(
    meter &&
      ((total) => {
        meter.unpacked(total - counted);
        counted = total;
      }),
  );
  if (decompress) await pipeline(source, compressed, decompress, uncompressed, extract);
  else await pipeline(source, compressed, uncompressed, extract);
  index.tarBytes = uncompressed.bytes;
  return index;
}

/** A sink for tests and benchmarks that only need the bytes read. */
export function discard(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}
