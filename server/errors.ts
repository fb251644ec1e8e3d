/**
 * The one error type that crosses module boundaries.
 *
 * Foreign errors (knex, the hub, a registry, dockerode) are wrapped where they
 * enter, keeping `cause`; the web layer turns an {@link AppError} into an HTML
 * page or `{status, message, field?}` JSON.
 */

/** Stable error codes; tests and API clients may rely on them. */
export type ErrorCode =
  | 'bad_request' // input failed validation; `field` names the input
  | 'unauthenticated' // no credentials were sent
  | 'forbidden' // credentials are valid but do not allow this
  | 'invalid_token' // the hub does not know the token
  | 'not_found' // no such resource, or not yours
  | 'conflict' // the request is valid but the resource's state refuses it
  | 'too_many_requests' // the caller has too much under way; try again when some of it is done
  | 'oauth_state_missing' // an OAuth callback without code or state
  | 'oauth_state_mismatch' // an OAuth callback whose state is not the one we sent
  | 'hub_unavailable' // the JupyterHub API did not answer as expected
  | 'database_unavailable' // the database did not answer
  | 'secrets_unavailable' // no crypt key is configured, or a secret does not open
  | 'internal'; // anything else; never exposed

export interface AppErrorOptions {
  /** The input field the error is about, for forms and `{field}` in JSON. */
  field?: string;
  /** A message per field, when several inputs are wrong at once. */
  fields?: Record<string, string>;
  /** Whether `message` may be shown to the caller (default: status < 500). */
  expose?: boolean;
  /** Seconds after which asking again may succeed (the Retry-After header). */
  retryAfter?: number;
  cause?: unknown;
}

/** An error with an HTTP status, a stable code and a message meant for people. */
export class AppError extends Error {
  readonly field: string | undefined;
  readonly fields: Record<string, string>;
  readonly expose: boolean;
  readonly retryAfter: number | undefined;

  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    options: AppErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.field = options.field ?? Object.keys(options.fields ?? {})[0];
    this.fields = options.fields ?? (options.field ? { [options.field]: message } : {});
    this.expose = options.expose ?? status < 500;
    this.retryAfter = options.retryAfter;
  }
}

/** A 400 about one input field. */
export function badRequest(field: string, message: string): AppError {
  return new AppError(400, 'bad_request', message, { field });
}

/** A 404 that says the same whether the thing is missing or someone else's. */
export function notFound(what: string): AppError {
  return new AppError(404, 'not_found', `${what} not found`);
}

/** A 429: the caller has too much under way; the message says what and when to try again. */
export function tooManyRequests(message: string, retryAfterSeconds: number): AppError {
  return new AppError(429, 'too_many_requests', message, { retryAfter: retryAfterSeconds });
}
