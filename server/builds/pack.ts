/**
 * What a git pack would inflate to, read before isomorphic-git indexes it:
 * isomorphic-git inflates every object whole in memory (and more than once:
 * while indexing, resolving deltas and checking out), and a blob of zeros
 * compresses a thousandfold, so one object of a small pack could take the
 * process down. Each object is inflated here once, a chunk at a time (what
 * it inflates to is counted, never held), and refused past what its header
 * declares or past the limit.
 *
 * The format: https://git-scm.com/docs/pack-format (version 2; objects are a
 * type-and-size header, for deltas a base reference, then a zlib stream).
 */
import zlib from 'node:zlib';

const OFS_DELTA = 6;
const REF_DELTA = 7;
const TYPES = new Set([1, 2, 3, 4, OFS_DELTA, REF_DELTA]);

/** An object of the pack inflates to more than the limit: its size, or what its delta builds. */
export class PackObjectTooLarge extends Error {
  constructor(
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`a git object of ${bytes} bytes (at most ${maxBytes})`);
    this.name = 'PackObjectTooLarge';
  }
}

/** The pack is not one git would read (truncated, or an object larger than its header says). */
export class PackUnreadable extends Error {
  constructor(reason: string) {
    super(`the repository's pack cannot be read: ${reason}`);
    this.name = 'PackUnreadable';
  }
}

export interface PackSummary {
  objects: number;
  /** The largest object as checked out (a delta: the object it builds). */
  largestBytes: number;
}

/**
 * Checks every object of a pack against `maxObjectBytes`; rejects with
 * {@link PackObjectTooLarge} at the first one past it, before inflating it.
 */
export async function checkPack(pack: Uint8Array, maxObjectBytes: number): Promise<PackSummary> {
  const bytes = Buffer.from(pack.buffer, pack.byteOffset, pack.byteLength);
  if (bytes.length < 32 || bytes.toString('latin1', 0, 4) !== 'PACK') throw new PackUnreadable('it does not start with PACK');
  const version = bytes.readUInt32BE(4);
  if (version !== 2) throw new PackUnreadable(`version ${version}`);
  const count = bytes.readUInt32BE(8);
  // The last 20 bytes are the pack's own checksum.
  const end = bytes.length - 20;
  let at = 12;
  let largest = 0;
  for (let n = 0; n < count; n++) {
    if (at >= end) throw new PackUnreadable(`it ends after ${n} of ${count} objects`);
    let byte = bytes[at++] ?? 0;
    const type = (byte >> 4) & 7;
    let size = byte & 15;
    let shift = 4;
    while (byte & 0x80) {
      if (at >= end || shift > 49) throw new PackUnreadable('an object header is cut off');
      byte = bytes[at++] ?? 0;
      size += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    }
    if (!TYPES.has(type)) throw new PackUnreadable(`an object of unknown type ${type}`);
    if (type === OFS_DELTA) {
      do byte = bytes[at++] ?? 0;
      while (byte & 0x80 && at < end);
    } else if (type === REF_DELTA) {
      at += 20;
    }
    // What the object inflates to; a delta's own data is smaller than what it builds, checked below.
    if (size > maxObjectBytes) throw new PackObjectTooLarge(size, maxObjectBytes);
    const inflated = await inflatedSize(bytes.subarray(at, end), size);
    at += inflated.consumed;
    let built = size;
    if (type === OFS_DELTA || type === REF_DELTA) {
      // A delta's data starts with the size of its base, then the size of what it builds.
      const cursor = { at: 0 };
      varint(inflated.head, cursor);
      built = varint(inflated.head, cursor);
      if (built > maxObjectBytes) throw new PackObjectTooLarge(built, maxObjectBytes);
    }
    largest = Math.max(largest, built);
  }
  return { objects: count, largestBytes: largest };
}

/** A delta header's two sizes take at most ten bytes each. */
const HEAD_BYTES = 20;

/**
 * Inflates one zlib stream from the start of `input` (the rest of the pack
 * follows it), a chunk at a time: how many bytes it took, and the first
 * bytes of what it gave. Refused when it gives more or less than `size`.
 */
function inflatedSize(input: Buffer, size: number): Promise<{ consumed: number; head: Buffer }> {
  return new Promise((resolve, reject) => {
    const inflate = zlib.createInflate({ chunkSize: 64 * 1024 });
    let out = 0;
    let head = Buffer.alloc(0);
    inflate.on('data', (chunk: Buffer) => {
      if (head.length < HEAD_BYTES) head = Buffer.concat([head, chunk.subarray(0, HEAD_BYTES - head.length)]);
      out += chunk.length;
      if (out > size) inflate.destroy(new PackUnreadable('an object is larger than its header says'));
    });
    inflate.once('error', (err: Error & { code?: string }) =>
      reject(err instanceof PackUnreadable ? err : new PackUnreadable(`an object does not inflate (${err.code ?? err.message})`)),
    );
    inflate.once('end', () => {
      if (out !== size) reject(new PackUnreadable('an object is smaller than its header says'));
      else resolve({ consumed: inflate.bytesWritten, head });
    });
    inflate.end(input);
  });
}

/** A delta header's size: seven bits a byte, least significant first. */
function varint(data: Buffer, cursor: { at: number }): number {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (cursor.at >= data.length || shift > 49) throw new PackUnreadable('a delta header is cut off');
    const byte = data[cursor.at++] ?? 0;
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(byte & 0x80)) return value;
  }
}
