/**
 * API authentication: a hub token in `Authorization: token …` or `Bearer …`,
 * resolved through the hub (cached) to its owner and scopes.
 */
import type { RequestHandler } from 'express';
import { AppError, unauthenticated } from '../errors.js';
import type { TokenAuthenticator } from '../hub/tokenAuth.js';
import type { HubIdentity } from '../hub/identity.js';

/** The token from an Authorization header, or undefined. */
export function tokenFromHeader(header: string | undefined): string | undefined {
  const match = /^(?:token|bearer)\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

/** Rejects a request without a valid hub token (401 none, 403 refused); sets req.identity. */
export function requireToken(authenticate: TokenAuthenticator): RequestHandler {
  return async (req, _res, next) => {
    const token = tokenFromHeader(req.get('authorization'));
    if (!token) {
      throw unauthenticated('Send a JupyterHub API token: "Authorization: token <token>".');
    }
    const identity = await authenticate(token);
    if (!identity) throw new AppError('invalid_token', 'The hub does not accept this token.');
    req.identity = identity;
    next();
  };
}

/** The identity set by {@link requireToken}; a programming error if missing. */
export function identityOf(req: { identity?: HubIdentity }): HubIdentity {
  if (!req.identity) throw new Error('requireToken must run before this handler');
  return req.identity;
}
