/**
 * Content that must be what its digest says: whole bodies read up to a
 * limit and checked, and streams checked as they pass. sha256 and sha512,
 * the algorithms the OCI image specification registers.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { Response } from 'undici';
import { formatBytes } from '../format.js';
import { RegistryError } from './errors.js';

const ALGORITHMS = new Set(['sha256', 'sha512']);

/** A hash for the digest's algorithm; refuses any other. */
function hashFor(digest: string): { hash: Hash; hex: string } {
  const [algorithm = '', hex = ''] = digest.split(':');
  if (!ALGORITHMS.has(algorithm))
    throw new RegistryError('registry.unsupported', `Unsupported digest algorithm "${algorithm}": sha256 and sha512 are read.`);
  return { hash: createHash(algorithm), hex };
}

/** `algorithm:hex` of `bytes` with the algorithm of `like` (a digest; sha256 when there is none). */
export function digestOf(bytes: Uint8Array, like = 'sha256:'): string {
  const algorithm = like.split(':')[0] ?? 'sha256';
  return `${algorithm}:${hashFor(like).hash.update(bytes).digest('hex')}`;
}

/** Refuses bytes that are not what `digest` says. */
export function verifyDigest(bytes: Uint8Array, digest: string, what = 'A blob'): void {
  const { hash, hex } = hashFor(digest);
  if (hash.update(bytes).digest('hex') !== hex) {
    throw new RegistryError('registry.digest_mismatch', `${what} the registry sent does not match its digest ${digest}.`);
  }
}

/** Reads a body up to `limit` bytes; a longer one is cut off and refused. */
export async function readLimited(response: Response, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (!response.body) return Buffer.alloc(0);
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > limit) {
      await response.body.cancel().catch(() => undefined);
      throw new RegistryError('registry.too_large', `${what} is larger than ${formatBytes(limit)}.`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** Passes bytes through, failing when they exceed the declared size or miss the digest. */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private readonly hex: string;
  private seen = 0;

  constructor(
    private readonly digest: string,
    private readonly size: number,
  ) {
    super();
    ({ hash: this.hash, hex: this.hex } = hashFor(digest));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.size) {
      callback(new RegistryError('registry.digest_mismatch', `A layer is larger than its manifest says (${this.size} bytes).`));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.hash.digest('hex') !== this.hex) {
      callback(new RegistryError('registry.digest_mismatch', `A layer the registry sent does not match its digest ${this.digest}.`));
      return;
    }
    callback();
  }
}
