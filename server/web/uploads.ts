/**
 * The body of a build request: multipart (the form, and API clients sending
 * files as files), or JSON whose `files` are `{name, content}` with base64
 * content. Either way the route gets `req.body` fields and `req.uploads`.
 *
 * A multipart body is read with busboy as it arrives: each file streams to
 * the work directory (never held in memory while it arrives), and the limits
 * (files, their bytes together, text fields) are checked on every chunk. Past
 * one, the request is answered at once (413 or 400, naming `files`) while the
 * client may still be sending; what it sends after is read and dropped for a
 * few seconds, so that it sees the answer, and then the connection is cut. A body
 * that declares a length over the limit is refused before it is read. Only a
 * body within the limits is handed over, its files read back whole: at most
 * the upload limit, once it has been checked.
 */
import fs from 'node:fs';
import path from 'node:path';
import busboy from 'busboy';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { AppError } from '../errors.js';
import { formatKiB } from '../format.js';
import type { UploadedFile } from '../builds/recipe.js';
import type { WorkDir } from '../workDir.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** Files uploaded with a build request. */
    uploads?: UploadedFile[];
  }
}

/** All text fields of one request together (a Dockerfile, requirements, an environment.yml, …). */
const TEXT_FIELDS_BYTES = 256 * 1024;
const FIELDS = 40;
/** Boundaries and part headers, beyond the files and fields a body may carry. */
const MULTIPART_OVERHEAD = 64 * 1024;
/** How long a refused upload may go on sending (read and dropped) before its connection is cut. */
const LINGER_MS = 5000;
/** Names that would reach an object's prototype; no form field is called so. */
const RESERVED = new Set(['__proto__', 'constructor', 'prototype']);

export interface UploadLimits {
  /** All files of one request together. */
  uploadBytes: number;
  uploadFiles: number;
}

export function buildUploads(limits: UploadLimits, workDir: WorkDir): RequestHandler[] {
  const tooLarge = () =>
    new AppError(
      'payload_too_large',
      `The uploaded files are larger than ${formatKiB(limits.uploadBytes)} together; put larger inputs in a git repository.`,
      { field: 'files' },
    );
  const json = express.json({ limit: Math.ceil(limits.uploadBytes * 1.4) + TEXT_FIELDS_BYTES });
  return [
    (req, res, next) => {
      if (!req.is('multipart/form-data')) return next();
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > limits.uploadBytes + TEXT_FIELDS_BYTES + MULTIPART_OVERHEAD) return refuse(req, res, next, tooLarge());
      receive(req, res, limits, workDir, tooLarge).then(
        ({ fields, files }) => {
          req.body = fields;
          req.uploads = files;
          next();
        },
        (err: unknown) => refuse(req, res, next, err),
      );
    },
    (req, res, next) => {
      if (req.uploads || !req.is('application/json')) return next();
      json(req, res, (err: unknown) => {
        if ((err as { type?: string } | undefined)?.type === 'entity.too.large') return next(tooLarge());
        if (err) return next(err);
        const body = (req.body ?? {}) as { files?: unknown };
        const files = Array.isArray(body.files) ? (body.files as unknown[]) : [];
        // This runs in the parser's callback, not in a route: a refusal goes to next(), never thrown.
        const bad = files.findIndex(
          (f) => typeof (f as { name?: unknown })?.name !== 'string' || typeof (f as { content?: unknown }).content !== 'string',
        );
        if (bad >= 0)
          return next(new AppError('bad_request', `files[${bad}] is {"name": "...", "content": "<base64>"}`, { field: 'files' }));
        if (files.length > limits.uploadFiles)
          return next(new AppError('bad_request', `Upload at most ${limits.uploadFiles} files`, { field: 'files' }));
        req.uploads = (files as Array<{ name: string; content: string }>).map((f) => ({
          name: f.name,
          content: Buffer.from(f.content, 'base64'),
        }));
        delete body.files;
        next();
      });
    },
  ];
}

/**
 * Answers a refused upload now, while the client may still be sending. The
 * connection is not closed at once: a client that reads the answer only
 * once it has sent its body (fetch does) would get a reset instead of the
 * answer. What it still sends is read and dropped, never kept, for
 * {@link LINGER_MS} at most; then the connection is cut.
 */
function refuse(req: Request, res: Response, next: NextFunction, err: unknown): void {
  res.once('finish', () => {
    if (req.complete) return;
    req.resume();
    const cut = setTimeout(() => req.socket.destroy(), LINGER_MS).unref();
    req.once('end', () => clearTimeout(cut));
    req.once('close', () => clearTimeout(cut));
  });
  next(err);
}

/** Reads a multipart body: its text fields, and its files streamed to a folder of the work directory. */
function receive(
  req: Request,
  res: Response,
  limits: UploadLimits,
  workDir: WorkDir,
  tooLarge: () => AppError,
): Promise<{ fields: Record<string, string>; files: UploadedFile[] }> {
  const folder = workDir.make('upload');
  // However the request ends (answered, refused, the client gone), what it brought goes.
  res.once('close', () => workDir.remove(folder));
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        limits: { fields: FIELDS, fieldSize: TEXT_FIELDS_BYTES, files: limits.uploadFiles, fieldNameSize: 200 },
      });
    } catch (err) {
      reject(new AppError('bad_request', `The upload could not be read: ${(err as Error).message}`, { field: 'files', cause: err }));
      return;
    }
    const fields: Record<string, string> = {};
    const files: Array<{ name: string; path: string }> = [];
    const writes: Array<Promise<void>> = [];
    const open = new Set<fs.WriteStream>();
    let textBytes = 0;
    let fileBytes = 0;
    let failed = false;
    const fail = (err: AppError) => {
      if (failed) return;
      failed = true;
      // Nothing more is parsed or written: the request is answered now.
      req.unpipe(parser);
      parser.removeAllListeners();
      parser.on('error', () => undefined);
      for (const out of open) out.destroy();
      reject(err);
    };
    const refusedField = (field: string, message: string) => fail(new AppError('payload_too_large', message, { field }));

    parser.on('field', (name, value, info) => {
      textBytes += Buffer.byteLength(name) + Buffer.byteLength(value);
      if (info.nameTruncated || info.valueTruncated || textBytes > TEXT_FIELDS_BYTES)
        return refusedField(name, `The form's text fields are larger than ${formatKiB(TEXT_FIELDS_BYTES)} together.`);
      if (!RESERVED.has(name)) fields[name] = value;
    });
    parser.on('file', (name, stream, info) => {
      // A form's empty file input sends a part without a file name: nothing was chosen.
      if (!info.filename) return void stream.resume();
      if (name !== 'files') {
        stream.resume();
        return fail(new AppError('bad_request', `Files are uploaded in the field "files", not "${name}"`, { field: 'files' }));
      }
      const target = path.join(folder, String(files.length));
      files.push({ name: info.filename, path: target });
      const out = fs.createWriteStream(target, { flags: 'wx', mode: 0o600 });
      open.add(out);
      const written = new Promise<void>((done, broke) => {
        out.once('close', () => open.delete(out));
        out.once('finish', done);
        out.once('error', broke);
      });
      // A refused request destroys its writes; nothing waits for them then.
      written.catch(() => undefined);
      writes.push(written);
      stream.on('data', (chunk: Buffer) => {
        if (failed) return;
        fileBytes += chunk.length;
        if (fileBytes > limits.uploadBytes) return fail(tooLarge());
        if (!out.write(chunk)) {
          stream.pause();
          out.once('drain', () => stream.resume());
        }
      });
      stream.once('end', () => out.end());
    });
    parser.on('filesLimit', () => fail(new AppError('bad_request', `Upload at most ${limits.uploadFiles} files`, { field: 'files' })));
    parser.on('fieldsLimit', () => refusedField('files', `A build request has at most ${FIELDS} fields.`));
    parser.on('error', (err: Error) =>
      fail(new AppError('bad_request', `The upload could not be read: ${err.message}`, { field: 'files', cause: err })),
    );
    parser.on('close', () => {
      if (failed) return;
      Promise.all(writes).then(
        // Within the limits: read back whole (at most the upload limit), and the folder goes at once.
        () => {
          const uploads = files.map((f) => ({ name: f.name, content: fs.readFileSync(f.path) }));
          workDir.remove(folder);
          resolve({ fields, files: uploads });
        },
        (err: unknown) => fail(new AppError('internal', 'The upload could not be stored', { cause: err, expose: false })),
      );
    });
    req.pipe(parser);
  });
}
