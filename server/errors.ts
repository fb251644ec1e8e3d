/**
 * The one error type that crosses module boundaries.
 *
 * Foreign errors (knex, the hub, a registry, dockerode) are wrapped where they
 * enter, keeping `cause`; the web layer turns an {@link AppError} into an HTML
 * page or `{status, message, field?}` JSON. An error's HTTP status follows
 * from its code, so that the two cannot disagree; the named constructors
 * below are the way to make one.
 */

/** Stable error codes, each with its HTTP status; tests and API clients may rely on them. */
const STATUS = {
  bad_request: 400, // input failed validation; `field` names the input
  oauth_state_missing: 400, // an OAuth callback without code or state
  unauthenticated: 401, // no credentials were sent
  forbidden: 403, // credentials are valid but do not allow this
  invalid_token: 403, // the hub does not know the token
  oauth_state_mismatch: 403, // an OAuth callback whose state is not the one we sent
  not_found: 404, // no such resource, or not yours
  conflict: 409, // the request is valid but the resource's state refuses it
  quota_exceeded: 409, // it would pass a quota of the user's or the system's; the message says what to delete
  payload_too_large: 413, // the request body is larger than allowed
  unsupported_media_type: 415, // the request body is in an encoding or charset we do not read
  too_many_requests: 429, // the caller has too much under way; try again when some of it is done
  internal: 500, // anything else; never exposed
  upstream_failed: 502, // a registry or the Docker engine answered, but could not do it
  hub_failed: 502, // the JupyterHub API answered, but not as expected
  upstream_unavailable: 503, // a registry or the Docker engine cannot be reached, or has nothing to do it with
  hub_unavailable: 503, // the JupyterHub API cannot be reached
  database_unavailable: 503, // the database did not answer
  secrets_unavailable: 503, // no crypt key is configured, or a secret does not open
  upstream_timeout: 504, // a registry or the Docker engine did not finish in time
} as const;

export type ErrorCode = keyof typeof STATUS;

/** The code for a status a library set (body-parser: 400, 413, 415; csrf-sync: 403): the first code listed with it. */
export function codeForStatus(status: number): ErrorCode {
  const found = (Object.keys(STATUS) as ErrorCode[]).find((code) => STATUS[code] === status);
  return found ?? (status >= 500 ? 'internal' : 'bad_request');
}

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
  readonly status: number;
  readonly field: string | undefined;
  readonly fields: Record<string, string>;
  readonly expose: boolean;
  readonly retryAfter: number | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: AppErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.status = STATUS[code];
    this.field = options.field ?? Object.keys(options.fields ?? {})[0];
    this.fields = options.fields ?? (options.field ? { [options.field]: message } : {});
    this.expose = options.expose ?? this.status < 500;
    this.retryAfter = options.retryAfter;
  }
}

/** A 400 about one input field. */
export function badRequest(field: string, message: string): AppError {
  return new AppError('bad_request', message, { field });
}

/** A 400 about several input fields at once; the message names the first. */
export function invalidInput(fields: Record<string, string>): AppError {
  const [field, message] = Object.entries(fields)[0] ?? ['input', 'Invalid input'];
  return new AppError('bad_request', `${field}: ${message}`, { fields });
}

/** A 401: no credentials were sent, or the session has ended. */
export function unauthenticated(message: string): AppError {
  return new AppError('unauthenticated', message);
}

/** A 403: who asks may not do this. */
export function forbidden(message: string, cause?: unknown): AppError {
  return new AppError('forbidden', message, { cause });
}

/** A 404 that says the same whether the thing is missing or someone else's. */
export function notFound(what: string): AppError {
  return new AppError('not_found', `${what} not found`);
}

/** A 409: the request is valid, but the state of things refuses it; the message is for the person. */
export function conflict(message: string, options: Pick<AppErrorOptions, 'field' | 'cause'> = {}): AppError {
  return new AppError('conflict', message, options);
}

/** A 409: saving or building this would pass a quota; the message says what to delete (`field`: the input it is about). */
export function quotaExceeded(message: string, field?: string): AppError {
  return new AppError('quota_exceeded', message, field ? { field } : {});
}

/** A 429: the caller has too much under way; the message says what and when to try again. */
export function tooManyRequests(message: string, retryAfterSeconds: number): AppError {
  return new AppError('too_many_requests', message, { retryAfter: retryAfterSeconds });
}

/** A registry or the Docker engine could not do it: unreachable (503), refused (502), or too slow (504). */
export function upstream(kind: 'unavailable' | 'failed' | 'timeout', message: string, cause?: unknown): AppError {
  return new AppError(`upstream_${kind}`, message, { cause, expose: true });
}
