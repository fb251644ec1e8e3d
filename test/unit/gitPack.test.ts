/**
 * The checks before isomorphic-git inflates or writes anything: a pack's
 * objects against the largest file allowed (packs written by git itself, and
 * by hand where git would not write what an attacker can), and the file
 * system a checkout writes through, counting as written.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { checkoutFs, CheckoutTooLarge } from '../../server/builds/checkoutFs.js';
import { checkPack, PackObjectTooLarge, PackUnreadable } from '../../server/builds/pack.js';

const MiB = 1024 * 1024;
const dirs: string[] = [];
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-pack-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A pack of the given blobs, as git writes it (deltas where git finds them). */
function gitPack(blobs: Buffer[]): Buffer {
  const dir = tempDir();
  execFileSync('git', ['init', '-q', dir]);
  const ids = blobs.map((blob) => execFileSync('git', ['hash-object', '-w', '--stdin'], { cwd: dir, input: blob }).toString().trim());
  return execFileSync('git', ['pack-objects', '--stdout', '-q'], { cwd: dir, input: `${ids.join('\n')}\n`, maxBuffer: 64 * MiB });
}

/** A type-and-size header as the pack format writes it. */
function objectHeader(type: number, size: number): Buffer {
  const bytes = [((size > 15 ? 0x80 : 0) | (type << 4) | (size & 15)) & 0xff];
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    bytes.push((rest > 127 ? 0x80 : 0) | (rest & 127));
    rest = Math.floor(rest / 128);
  }
  return Buffer.from(bytes);
}

/** A delta header's size, seven bits a byte. */
function deltaSize(size: number): Buffer {
  const bytes: number[] = [];
  do {
    bytes.push((size > 127 ? 0x80 : 0) | (size & 127));
    size = Math.floor(size / 128);
  } while (size > 0);
  return Buffer.from(bytes);
}

/** A pack written by hand: each object a header, perhaps a base offset, and a zlib stream of `data`. */
function handPack(objects: Array<{ type: number; size?: number; data: Buffer; ofs?: number }>): Buffer {
  const parts: Buffer[] = [Buffer.from('PACK'), Buffer.from([0, 0, 0, 2]), Buffer.alloc(4)];
  parts[2]!.writeUInt32BE(objects.length);
  for (const o of objects) {
    parts.push(objectHeader(o.type, o.size ?? o.data.length));
    if (o.ofs !== undefined) parts.push(Buffer.from([o.ofs]));
    parts.push(zlib.deflateSync(o.data));
  }
  parts.push(Buffer.alloc(20));
  return Buffer.concat(parts);
}

describe('checkPack', () => {
  it('reads a pack git wrote, deltas included, and names its largest object', async () => {
    const text = Buffer.from('line\n'.repeat(20_000));
    const pack = gitPack([text, Buffer.concat([text, Buffer.from('one more line\n')]), Buffer.from('small\n')]);
    await expect(checkPack(pack, MiB)).resolves.toEqual({ objects: 3, largestBytes: text.length + 14 });
  });

  it('refuses a blob of zeros that inflates past the limit, though its pack is small', async () => {
    const pack = gitPack([Buffer.alloc(8 * MiB)]);
    expect(pack.length).toBeLessThan(64 * 1024);
    const err = await checkPack(pack, 4 * MiB).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PackObjectTooLarge);
    expect(err).toMatchObject({ bytes: 8 * MiB, maxBytes: 4 * MiB });
  });

  it('refuses a small delta that builds an object past the limit', async () => {
    // Base of 1 KiB; the delta's data is a few bytes and says it builds 10 MiB (copies of the base would).
    const delta = Buffer.concat([deltaSize(1024), deltaSize(10 * MiB), Buffer.from([0x90, 0x04])]);
    const base = { type: 3, data: Buffer.alloc(1024, 1) };
    const baseLength = objectHeader(3, 1024).length + zlib.deflateSync(base.data).length;
    const pack = handPack([base, { type: 6, data: delta, ofs: baseLength }]);
    await expect(checkPack(pack, MiB)).rejects.toThrow(PackObjectTooLarge);
    await expect(checkPack(pack, 16 * MiB)).resolves.toEqual({ objects: 2, largestBytes: 10 * MiB });
  });

  it.each([
    [
      'an object that inflates to more than its header says',
      handPack([{ type: 3, size: 10, data: Buffer.alloc(4096) }]),
      /larger than its header says/,
    ],
    ['an object that inflates to less', handPack([{ type: 3, size: 4096, data: Buffer.alloc(10) }]), /smaller than its header says/],
    ['a pack cut short', handPack([{ type: 3, data: Buffer.alloc(10) }]).subarray(0, 14), /does not start with PACK|ends after/],
    ['an object of no known type', handPack([{ type: 5, data: Buffer.alloc(10) }]), /unknown type 5/],
  ])('refuses %s', async (_what, pack, message) => {
    const err = await checkPack(pack, MiB).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PackUnreadable);
    expect(err).toMatchObject({ message: expect.stringMatching(message) });
  });
});

describe('checkoutFs', () => {
  const limits = { maxBytes: 1000, maxFiles: 5, maxObjectBytes: MiB };

  it('counts what the work tree gets as it is written, and refuses the write past the bytes', async () => {
    const dir = tempDir();
    const fs2 = checkoutFs(dir, limits);
    await fs2.mkdir(path.join(dir, 'a'));
    await fs2.writeFile(path.join(dir, 'a', 'one'), Buffer.alloc(600));
    // The same bytes written to .git are not the work tree's.
    await fs2.mkdir(path.join(dir, '.git'));
    await fs2.writeFile(path.join(dir, '.git', 'index'), Buffer.alloc(5000));
    expect(fs2.written).toEqual({ bytes: 600, files: 2 });
    await expect(fs2.writeFile(path.join(dir, 'a', 'two'), Buffer.alloc(500))).rejects.toThrow(CheckoutTooLarge);
    expect(fs.existsSync(path.join(dir, 'a', 'two'))).toBe(false);
    // Once refused, every later write is (isomorphic-git retries a failed write after making its folder).
    await expect(fs2.writeFile(path.join(dir, 'a', 'three'), 'x')).rejects.toMatchObject({ limit: 'bytes', max: 1000 });
  });

  it('refuses the entry past the files, links included', async () => {
    const dir = tempDir();
    const fs2 = checkoutFs(dir, limits);
    for (let i = 0; i < 4; i++) await fs2.writeFile(path.join(dir, `f${i}`), 'x');
    await fs2.symlink('f0', path.join(dir, 'link'));
    await expect(fs2.mkdir(path.join(dir, 'sub'))).rejects.toMatchObject({ limit: 'files', max: 5 });
  });

  it('writes nothing outside its folder', async () => {
    const dir = tempDir();
    const fs2 = checkoutFs(path.join(dir, 'checkout'), limits);
    await expect(fs2.writeFile(path.join(dir, 'checkout', '..', 'escaped'), 'x')).rejects.toThrow(/outside the checkout/);
    await expect(fs2.symlink('/etc', path.join(dir, 'elsewhere'))).rejects.toThrow(/outside the checkout/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('checks a pack before it is written, and writes none that holds an object past the limit', async () => {
    const dir = tempDir();
    const fs2 = checkoutFs(dir, { ...limits, maxObjectBytes: 4 * MiB });
    const packFile = path.join(dir, '.git', 'objects', 'pack', `pack-${'ab'.repeat(20)}.pack`);
    fs.mkdirSync(path.dirname(packFile), { recursive: true });
    await expect(fs2.writeFile(packFile, gitPack([Buffer.alloc(8 * MiB)]))).rejects.toThrow(PackObjectTooLarge);
    expect(fs.existsSync(packFile)).toBe(false);
    await fs2.writeFile(packFile, gitPack([Buffer.alloc(2 * MiB)]));
    expect(fs.existsSync(packFile)).toBe(true);
  });
});
