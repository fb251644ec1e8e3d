/**
 * The body of a build request: multipart (the form, and API clients sending
 * files as files) through multer, in memory and size-limited, or JSON whose
 * `files` are `{name, content}` with base64 content. Either way the route
 * gets `req.body` fields and `req.uploads`.
 */
import express, { type RequestHandler } from 'express';
import multer from 'multer';
import { AppError } from '../errors.js';
import { formatKiB } from '../format.js';
import type { UploadedFile } from '../builds/recipe.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** Files uploaded with a build request. */
    uploads?: UploadedFile[];
  }
}

const TEXT_FIELDS_BYTES = 256 * 1024;

export function buildUploads(limits: { uploadBytes: number; uploadFiles: number }): RequestHandler[] {
  const tooLarge = () =>
    new AppError(
      'payload_too_large',
      `The uploaded files are larger than ${formatKiB(limits.uploadBytes)} together; put larger inputs in a git repository.`,
      { field: 'files' },
    );
  const multipart = multer({
    storage: multer.memoryStorage(),
    // One byte over the limit is enough to know; the schema counts the files together.
    limits: { fileSize: limits.uploadBytes + 1, files: limits.uploadFiles + 1, fieldSize: TEXT_FIELDS_BYTES, fields: 40 },
  }).array('files');
  const json = express.json({ limit: Math.ceil(limits.uploadBytes * 1.4) + TEXT_FIELDS_BYTES });
  return [
    (req, res, next) => {
      if (!req.is('multipart/form-data')) return next();
      multipart(req, res, (err: unknown) => {
        if (err instanceof multer.MulterError) {
          if (err.code === 'LIMIT_FILE_SIZE') return next(tooLarge());
          if (err.code === 'LIMIT_FILE_COUNT')
            return next(new AppError('bad_request', `Upload at most ${limits.uploadFiles} files`, { field: 'files' }));
          return next(new AppError('bad_request', `The upload was refused: ${err.message}`, { field: err.field ?? 'files' }));
        }
        if (err) return next(err);
        req.uploads = ((req.files as Express.Multer.File[] | undefined) ?? []).map((f) => ({ name: f.originalname, content: f.buffer }));
        next();
      });
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
