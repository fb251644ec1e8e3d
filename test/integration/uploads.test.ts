/**
 * A build request's body as the service reads it (server/web/uploads.ts on a
 * real HTTP server on loopback, with the service's error handler): files
 * streamed to the work directory as they arrive, the limits checked as bytes
 * come in. An upload far over the limit is answered 413 naming `files`
 * while the client is still sending (the service neither buffers nor reads
 * it all), a declared size over the limit before a byte of the body, and
 * nothing is left in the work directory either way.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../server/log.js';
import { errorHandler } from '../../server/web/errors.js';
import { buildUploads } from '../../server/web/uploads.js';
import { WorkDir } from '../../server/workDir.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const LIMITS = { uploadBytes: MiB, uploadFiles: 3 };
let dir: string;
let workDir: WorkDir;
let server: http.Server;
let base: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-uploads-'));
  workDir = WorkDir.open(path.join(dir, 'work'));
  const app = express();
  app.post('/api/builds', ...buildUploads(LIMITS, workDir), (req, res) => {
    res.json({
      fields: req.body as Record<string, string>,
      files: (req.uploads ?? []).map((f) => ({
        name: f.name,
        size: f.content.length,
        sha256: createHash('sha256').update(f.content).digest('hex'),
      })),
    });
  });
  app.use(errorHandler({ logger: createLogger('silent'), apiPrefix: '/api/', loginUrl: '/login' }));
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  workDir?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const BOUNDARY = 'ci-boundary-7f3a9c';
const part = (headers: string) => Buffer.from(`--${BOUNDARY}\r\n${headers}\r\n\r\n`);
const field = (name: string, value: string) =>
  Buffer.concat([part(`Content-Disposition: form-data; name="${name}"`), Buffer.from(`${value}\r\n`)]);
const fileHead = (name: string) =>
  part(`Content-Disposition: form-data; name="files"; filename="${name}"\r\nContent-Type: application/octet-stream`);
const END = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);

/** Everything left in the work directory but the process folder itself. */
function leftovers(): string[] {
  return fs.readdirSync(workDir.folder);
}

interface Sent {
  status: number;
  body: { message?: string; field?: string };
  /** Body bytes the client had written when the answer came. */
  sentWhenAnswered: number;
  total: number;
}

/**
 * Sends a multipart body of `size` bytes of one file (in 64 KiB writes, at the pace the connection takes
 * them) and stops writing as soon as an answer comes.
 */
function sendLargeFile(size: number, headers: Record<string, string> = {}): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const head = Buffer.concat([field('name', 'big'), fileHead('data.bin')]);
    const total = head.length + size + END.length;
    let sent = 0;
    let answered = false;
    const req = http.request(`${base}/api/builds`, {
      method: 'POST',
      headers: { 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`, ...headers },
    });
    req.on('response', (res) => {
      answered = true;
      const sentWhenAnswered = sent;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}'), sentWhenAnswered, total });
      });
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const chunk = Buffer.alloc(64 * KiB, 0x61);
    const write = () => {
      while (!answered && sent < total) {
        const next = sent === 0 ? head : sent + chunk.length >= total - END.length ? END : chunk;
        sent += next.length;
        if (!req.write(next)) return void req.once('drain', write);
      }
      if (!answered) req.end();
    };
    write();
  });
}

describe('multipart uploads', () => {
  it('streams files to the work directory and hands them over whole, leaving nothing behind', async () => {
    const one = Buffer.alloc(300 * KiB, 1);
    const two = Buffer.from('small file\n');
    const form = new FormData();
    form.set('name', 'env');
    form.set('dockerfile', 'FROM x');
    form.append('files', new Blob([one]), 'one.bin');
    form.append('files', new Blob([two]), 'two.txt');
    const res = await fetch(`${base}/api/builds`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { fields: Record<string, string>; files: unknown[] };
    expect(body.fields).toEqual({ name: 'env', dockerfile: 'FROM x' });
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(body.files).toEqual([
      { name: 'one.bin', size: one.length, sha256: sha(one) },
      { name: 'two.txt', size: two.length, sha256: sha(two) },
    ]);
    expect(leftovers()).toEqual([]);
  });

  it('answers 413 naming files while the client is still sending 200 MiB, and keeps none of it', async () => {
    const sent = await sendLargeFile(200 * MiB);
    expect(sent.status).toBe(413);
    expect(sent.body.field).toBe('files');
    expect(sent.body.message).toMatch(/larger than 1\.0 MiB together/);
    // The service answered at the limit: the client had sent a small part of the body.
    expect(sent.sentWhenAnswered).toBeLessThan(sent.total / 4);
    for (let i = 0; i < 50 && leftovers().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(leftovers()).toEqual([]);
  });

  it('answers 413 to a body whose declared length is over the limit, before reading it', async () => {
    const sent = await sendLargeFile(200 * MiB, { 'Content-Length': String(200 * MiB + 1000) });
    expect(sent.status).toBe(413);
    expect(sent.body.field).toBe('files');
    expect(sent.sentWhenAnswered).toBeLessThan(sent.total / 4);
  });

  it('answers 413 to a client that reads only once it has sent all (fetch), rather than cutting it off', async () => {
    // 4 MiB in 64 KiB pieces, a little at a time: the client is still sending when the answer is written.
    const head = Buffer.concat([field('name', 'big'), fileHead('data.bin')]);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 0) controller.enqueue(head);
        if (sent >= 64) {
          controller.enqueue(END);
          controller.close();
          return;
        }
        sent++;
        await new Promise((r) => setTimeout(r, 10));
        controller.enqueue(Buffer.alloc(64 * KiB, 0x62));
      },
    });
    const res = await fetch(`${base}/api/builds`, {
      method: 'POST',
      headers: { 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}` },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ field: 'files' });
    for (let i = 0; i < 50 && leftovers().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(leftovers()).toEqual([]);
  });

  it('takes as many files as allowed, and refuses one more, naming files', async () => {
    const form = new FormData();
    for (let i = 0; i < 3; i++) form.append('files', new Blob([`file ${i}`]), `f${i}.txt`);
    const three = await fetch(`${base}/api/builds`, { method: 'POST', body: form });
    expect(three.status).toBe(200);
    expect(((await three.json()) as { files: unknown[] }).files).toHaveLength(3);
    form.append('files', new Blob(['file 3']), 'f3.txt');
    const res = await fetch(`${base}/api/builds`, { method: 'POST', body: form });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ field: 'files', message: 'Upload at most 3 files' });
    expect(leftovers()).toEqual([]);
  });
});

describe('JSON uploads', () => {
  it('take base64 files within a bounded body, and refuse a larger body with 413 naming files', async () => {
    const post = (files: Array<{ name: string; content: string }>) =>
      fetch(`${base}/api/builds`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'env', files }),
      });
    const ok = await post([{ name: 'a.txt', content: Buffer.from('hello').toString('base64') }]);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { files: unknown[] }).files).toEqual([
      { name: 'a.txt', size: 5, sha256: createHash('sha256').update('hello').digest('hex') },
    ]);
    const big = await post([{ name: 'b.bin', content: Buffer.alloc(2 * MiB).toString('base64') }]);
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ field: 'files' });
  });
});
