/**
 * Browser login: the OAuth 2 authorization code flow against JupyterHub, done
 * by openid-client and wrapped as a passport strategy.
 *
 * JupyterHub has no discovery document, so the server metadata is given by
 * hand. The hub compares `redirect_uri` with the registered callback to the
 * letter, and registers a service's callback as a bare path by default
 * (`/services/NAME/oauth_callback`); openid-client always sends an absolute
 * one at the token endpoint, so our fetch puts the registered value back.
 */
import type { Request } from 'express';
import * as oidc from 'openid-client';
import type { StrategyCreated } from 'passport';
import { AppError, forbidden } from '../errors.js';
import type { HubClient } from './client.js';
import { hasAccessScope, type HubIdentity } from './identity.js';

export interface HubOAuthOptions {
  /** `JUPYTERHUB_API_URL`: the token endpoint is reached from the server side. */
  apiUrl: string;
  /** Browser-facing hub URL; without it, the browser is sent to a relative path. */
  publicUrl: string | undefined;
  baseUrl: string;
  clientId: string;
  /** A service's OAuth client secret is its API token. */
  clientSecret: string;
  /** The callback exactly as registered at the hub. */
  redirectUri: string;
  accessScopes: readonly string[];
  hub: HubClient;
  /** Swapped in tests. */
  fetch?: typeof fetch;
}

/** Kept in the session between the redirect to the hub and the callback. */
export interface PendingLogin {
  state: string;
  /** Where to send the user after login. */
  next: string;
}

declare module 'express-session' {
  interface SessionData {
    pendingLogin?: PendingLogin;
  }
}

// Stands in for the browser's origin when the hub's public URL is unknown;
// only the path and query of URLs built on it are ever used.
const PLACEHOLDER_ORIGIN = 'http://jupyterhub.invalid';

/** Builds openid-client's configuration for the hub as an OAuth 2 server. */
function createHubOAuthConfiguration(options: HubOAuthOptions): oidc.Configuration {
  const browserHub = new URL(options.baseUrl, options.publicUrl ?? PLACEHOLDER_ORIGIN);
  const tokenEndpoint = `${options.apiUrl.replace(/\/+$/, '')}/oauth2/token`;
  const config = new oidc.Configuration(
    {
      issuer: new URL(options.apiUrl).origin,
      authorization_endpoint: new URL('hub/api/oauth2/authorize', browserHub).href,
      token_endpoint: tokenEndpoint,
    },
    options.clientId,
    undefined,
    // JupyterHub reads the secret from the form body, as its own HubOAuth sends it.
    oidc.ClientSecretPost(options.clientSecret),
  );
  if (tokenEndpoint.startsWith('http:') || browserHub.protocol === 'http:') {
    // The hub's API is usually plain http on loopback or a private network.
    oidc.allowInsecureRequests(config);
  }
  const baseFetch = options.fetch ?? fetch;
  config[oidc.customFetch] = (url, init) => {
    if (url === tokenEndpoint && init.body instanceof URLSearchParams) {
      init.body.set('redirect_uri', options.redirectUri);
    }
    return baseFetch(url, init as RequestInit);
  };
  return config;
}

/** Only paths under our own prefix may be a post-login destination (no open redirect). */
export function safeNext(next: unknown, prefix: string): string {
  if (typeof next === 'string' && next.startsWith(prefix) && !next.startsWith('//') && !/[\\\s]/.test(next)) {
    return next;
  }
  return prefix;
}

/** What one step of the login flow ends in. */
export type LoginOutcome =
  | { kind: 'redirect'; url: string }
  | { kind: 'success'; identity: HubIdentity; next: string; token: string }
  | { kind: 'fail'; message: string };

/**
 * The passport strategy: without `code` it sends the browser to the hub's
 * authorize endpoint with a fresh `state`; on the callback it checks the state
 * (missing: 400, mismatch: 403, as JupyterHub's HubOAuth does), exchanges the
 * code, and asks the hub who the token belongs to.
 */
export class HubOAuthStrategy {
  readonly name = 'jupyterhub';
  readonly config: oidc.Configuration;

  constructor(
    readonly options: HubOAuthOptions,
    readonly prefix: string,
  ) {
    this.config = createHubOAuthConfiguration(options);
  }

  authenticate(this: StrategyCreated<HubOAuthStrategy>, req: Request): void {
    this.step(req).then(
      (outcome) => {
        if (outcome.kind === 'redirect') this.redirect(outcome.url);
        else if (outcome.kind === 'success') this.success(outcome.identity, { next: outcome.next, token: outcome.token });
        else this.fail({ message: outcome.message }, 403);
      },
      (err: unknown) => this.error(err as Error),
    );
  }

  /** One step of the flow, decided by whether the request is the callback. */
  step(req: Request): Promise<LoginOutcome> {
    const isCallback = 'code' in req.query || 'state' in req.query || 'error' in req.query;
    return isCallback ? this.finish(req) : this.start(req);
  }

  private async start(req: Request): Promise<LoginOutcome> {
    const state = oidc.randomState();
    req.session.pendingLogin = { state, next: safeNext(req.query.next, this.prefix) };
    const url = oidc.buildAuthorizationUrl(this.config, { redirect_uri: this.options.redirectUri, state });
    return { kind: 'redirect', url: this.options.publicUrl ? url.href : `${url.pathname}${url.search}` };
  }

  private async finish(req: Request): Promise<LoginOutcome> {
    const { code, state, error } = req.query;
    if (typeof error === 'string') return { kind: 'fail', message: `The hub refused the login: ${error}` };
    if (typeof code !== 'string' || typeof state !== 'string' || code === '' || state === '') {
      throw new AppError('oauth_state_missing', 'The login callback is missing its code or state. Please log in again.');
    }
    const pending = req.session.pendingLogin;
    delete req.session.pendingLogin;
    if (!pending || pending.state !== state) {
      throw new AppError('oauth_state_mismatch', 'The login state does not match this browser session. Please log in again.');
    }

    const currentUrl = new URL(req.originalUrl, PLACEHOLDER_ORIGIN);
    let tokens: oidc.TokenEndpointResponse;
    try {
      tokens = await oidc.authorizationCodeGrant(this.config, currentUrl, { expectedState: pending.state });
    } catch (cause) {
      throw forbidden('The hub did not accept the login code. Please log in again.', cause);
    }
    const identity = await this.options.hub.identify(tokens.access_token);
    if (!identity) {
      throw forbidden('The hub did not accept the token it just issued. Please log in again.');
    }
    if (!hasAccessScope(identity, this.options.accessScopes)) {
      throw forbidden(
        `Your hub account has no access to this service; a hub admin can grant it with the scope ${this.options.accessScopes[0]}.`,
      );
    }
    // The token goes to the session sealed, to ask the hub again later who this is now.
    return { kind: 'success', identity, next: pending.next, token: tokens.access_token };
  }
}
