/**
 * The pack of a git fetch, written to disk as it arrives instead of being
 * held in memory. isomorphic-git reads an upload-pack response whole: it
 * demultiplexes the side band into memory without backpressure, collects the
 * pack and copies it again (four to five times the pack at the peak,
 * measured). Here the response is split on its way to isomorphic-git: the
 * pack's band goes to a file, a pkt-line at a time, and everything else (the
 * negotiation's lines, progress, errors, flushes) passes through unchanged,
 * so isomorphic-git negotiates and updates refs as ever and sees an empty
 * pack. The file is then indexed (git.indexPack), which holds it once.
 *
 * The format: https://git-scm.com/docs/protocol-common#_pkt_line_format and
 * https://git-scm.com/docs/protocol-v2 (side band: 1 pack data, 2 progress,
 * 3 fatal error).
 */
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PackUnreadable } from './pack.js';

const PACK_BAND = 1;
/** A pkt-line's length is four hex digits; the longest is 65520 bytes. */
const MAX_LINE = 65520;

/** Where one fetch's pack goes: a file in the repository's pack folder, named for its checksum once complete. */
export class PackFile {
  private handle: FileHandle | undefined;
  private bytes = 0;
  private readonly partial: string;

  constructor(private readonly folder: string) {
    this.partial = path.join(folder, 'incoming.pack.part');
  }

  async write(data: Uint8Array): Promise<void> {
    if (!this.handle) {
      await fsp.mkdir(this.folder, { recursive: true });
      this.handle = await fsp.open(this.partial, 'wx+', 0o600);
    }
    await this.handle.write(data);
    this.bytes += data.byteLength;
  }

  /**
   * Closes the file and names it `pack-<checksum>.pack`, as git does;
   * returns its path, or undefined when no pack came (nothing to fetch).
   */
  async finish(): Promise<string | undefined> {
    if (!this.handle) return undefined;
    const trailer = Buffer.alloc(20);
    if (this.bytes >= 32) await this.handle.read(trailer, 0, 20, this.bytes - 20);
    await this.handle.close();
    this.handle = undefined;
    if (this.bytes < 32) throw new PackUnreadable(`it has ${this.bytes} bytes`);
    const named = path.join(this.folder, `pack-${trailer.toString('hex')}.pack`);
    await fsp.rename(this.partial, named);
    return named;
  }

  /** Closes the file, if a fetch failed half-way (its folder is removed with the checkout). */
  async abandon(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }
}

/**
 * An upload-pack response's body with the pack's band taken out (written to
 * `pack`) and every other pkt-line passed on as it came. Holds at most one
 * pkt-line beyond a chunk of the body.
 */
export async function* packToDisk(body: AsyncIterable<Uint8Array>, pack: PackFile): AsyncGenerator<Uint8Array> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of body) {
    pending = pending.length > 0 ? Buffer.concat([pending, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const passed: Buffer[] = [];
    let at = 0;
    while (pending.length - at >= 4) {
      const hex = pending.toString('latin1', at, at + 4);
      if (!/^[0-9a-f]{4}$/i.test(hex)) throw new PackUnreadable('the response is not in pkt-lines');
      const length = parseInt(hex, 16);
      // 0000 flush, 0001 delimiter, 0002 end of response: no payload.
      const size = length < 4 ? 4 : length;
      if (size > MAX_LINE) throw new PackUnreadable(`a pkt-line of ${length} bytes`);
      if (pending.length - at < size) break;
      const line = pending.subarray(at, at + size);
      if (length > 4 && line[4] === PACK_BAND) await pack.write(line.subarray(5));
      else passed.push(line);
      at += size;
    }
    // What is left is the start of a line: copied, so that the chunk it came in can go.
    pending = Buffer.from(pending.subarray(at));
    if (passed.length > 0) yield Buffer.concat(passed);
  }
  // A line cut short: isomorphic-git reports the response as broken.
  if (pending.length > 0) yield pending;
}
