/**
 * The one error middleware: pages get a friendly HTML page, the API gets
 * `{status, message, field?}`. Unknown errors are logged and shown as a
 * generic 500 with the request id, never their text.
 */
import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import { z, ZodError } from 'zod';
import { AppError, codeForStatus } from '../errors.js';
import type { Logger } from '../log.js';
import { DATABASE_UNAVAILABLE_MESSAGE, isDatabaseUnavailable } from '../store/db.js';

/** JSON for the API and for clients that prefer it; HTML for browsers. */
function wantsJson(req: Request, apiPrefix: string): boolean {
  if (req.originalUrl.startsWith(apiPrefix)) return true;
  return req.accepts(['html', 'json']) === 'json';
}

/** Turns anything thrown into an {@link AppError}. */
function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof ZodError) {
    const issue = err.issues[0];
    const field = issue?.path.join('.') || undefined;
    return new AppError('bad_request', issue ? `${field ? `${field}: ` : ''}${issue.message}` : 'Invalid input', {
      ...(field ? { field } : {}),
      cause: err,
    });
  }
  // body-parser and friends mark client errors with status/expose.
  const e = err as { status?: unknown; expose?: unknown; message?: unknown };
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && e.expose === true) {
    return new AppError(codeForStatus(e.status), String(e.message), { cause: err });
  }
  if (isDatabaseUnavailable(err)) {
    return new AppError('database_unavailable', DATABASE_UNAVAILABLE_MESSAGE, { cause: err, expose: true });
  }
  return new AppError('internal', 'Internal error', { cause: err, expose: false });
}

/** 404 for anything no route answered. */
export function notFoundHandler(): RequestHandler {
  return (req) => {
    throw new AppError('not_found', `Nothing here: ${req.path}`);
  };
}

/** Every refusal of the JSON API: the status again, words for people, and the field (or fields) at fault. */
export const ErrorResponseSchema = z.object({
  status: z.number().int(),
  message: z.string(),
  field: z.string().optional(),
  errors: z.record(z.string(), z.string()).optional(),
});

/** Renders errors as HTML or JSON (see {@link wantsJson}). */
export function errorHandler(options: { logger: Logger; apiPrefix: string; loginUrl: string }): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const error = toAppError(err);
    const requestId = String(req.id ?? '');
    if (error.code === 'database_unavailable') {
      // One line, not a stack per request, while the database is away.
      options.logger.warn(
        { requestId, code: error.code, reason: err instanceof Error ? err.message : String(err) },
        'database unavailable',
      );
    } else if (error.status >= 500) {
      options.logger.error({ err: err instanceof Error ? err : new Error(String(err)), requestId, code: error.code }, 'request failed');
    }
    const message = error.expose ? error.message : `Something went wrong on our side. The error was logged with id ${requestId}.`;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(error.status);
    // A database or registry that is away, or too much under way: clients may ask again shortly.
    const retryAfter = error.retryAfter ?? (error.status === 503 ? 10 : undefined);
    if (retryAfter !== undefined) res.set('Retry-After', String(retryAfter));
    if (wantsJson(req, options.apiPrefix)) {
      res.json(
        ErrorResponseSchema.parse({
          status: error.status,
          message,
          ...(error.field ? { field: error.field } : {}),
          ...(Object.keys(error.fields).length > 1 ? { errors: error.fields } : {}),
        }),
      );
      return;
    }
    res.render('pages/error', {
      title: error.status >= 500 ? 'Something went wrong' : 'That did not work',
      status: error.status,
      message,
      loginAgain: error.code.startsWith('oauth_') || error.status === 401,
      loginUrl: options.loginUrl,
    });
  };
}
