/**
 * Browser login routes (login, oauth_callback, logout), the guard that sends
 * anonymous visitors of a page to the hub, and the check that keeps a
 * session in step with the hub: a session lives at most its absolute
 * lifetime, and who the user is (name, admin flag, scopes) is asked of the
 * hub again with the session's token every few minutes, so that a user the
 * hub demoted or removed loses what they may no longer do.
 */
import { Router, type Request, type RequestHandler } from 'express';
import type { Passport } from 'passport';
import { forbidden, unauthenticated } from '../errors.js';
import type { SessionTokenSealer } from '../hub/sessionToken.js';
import { hasAccessScope, type HubIdentity } from '../hub/identity.js';
import type { TokenAuthenticator } from '../hub/tokenAuth.js';

declare module 'express-session' {
  interface SessionData {
    /** The hub token the session logged in with (sealed), and when. */
    hubLogin?: { token: string; at: number };
  }
}

export interface AuthRoutesOptions {
  passport: InstanceType<typeof Passport>;
  /** The service prefix, e.g. /services/custom-images/. */
  prefix: string;
  /** Where the browser goes after our session ends: the hub's own logout. */
  hubLogoutUrl: string;
  /** The session cookie, cleared at logout. */
  cookieName: string;
  tokens: SessionTokenSealer;
}

/** login, oauth_callback and logout, relative to the service prefix. */
export function authRouter(options: AuthRoutesOptions): Router {
  const router = Router();
  router.get('/login', options.passport.authenticate('jupyterhub'));

  router.get('/oauth_callback', (req, res, next) => {
    options.passport.authenticate(
      'jupyterhub',
      (err: unknown, user: Express.User | false, info?: { next?: string; message?: string; token?: string }) => {
        if (err) return next(err);
        if (!user || !info?.token) return next(forbidden(info?.message ?? 'Login refused.'));
        const token = info.token;
        // passport >= 0.6 regenerates the session here, against session fixation.
        req.logIn(user, (loginErr) => {
          if (loginErr) return next(loginErr);
          req.session.hubLogin = { token: options.tokens.seal(token), at: Date.now() };
          res.redirect(info.next ?? options.prefix);
        });
      },
    )(req, res, next);
  });

  // A link or a prefetch must not end a session: GET asks, POST (with the form's CSRF token) logs out.
  router.get('/logout', (req, res) => {
    res.render('pages/logout', { title: 'Log out', csrfToken: req.csrfToken?.() });
  });
  router.post('/logout', (req, res, next) => {
    req.logout((logoutErr) => {
      if (logoutErr) return next(logoutErr);
      req.session.destroy((destroyErr) => {
        if (destroyErr) return next(destroyErr);
        res.clearCookie(options.cookieName, { path: options.prefix });
        res.redirect(303, options.hubLogoutUrl);
      });
    });
  });
  return router;
}

/**
 * Ends a session past its absolute lifetime, or whose hub token the hub no
 * longer accepts (or that lost access to the service), and brings the user's
 * name, admin flag and scopes up to date otherwise. The hub is asked through
 * `authenticate`, which caches its answers for a few minutes.
 */
export function keepSessionCurrent(options: {
  authenticate: TokenAuthenticator;
  tokens: SessionTokenSealer;
  maxAgeMs: number;
  accessScopes: readonly string[];
}): RequestHandler {
  return async (req, _res, next) => {
    if (!req.user) return next();
    const login = req.session.hubLogin;
    const token = login && Date.now() - login.at < options.maxAgeMs ? options.tokens.open(login.token) : undefined;
    const identity = token ? await options.authenticate(token) : null;
    if (!identity || !hasAccessScope(identity, options.accessScopes)) {
      // Ended here; a page sends the browser through the hub's login again.
      delete req.session.hubLogin;
      req.logout({ keepSessionInfo: true }, (err) => next(err));
      return;
    }
    if (JSON.stringify(identity) !== JSON.stringify(req.user)) {
      req.user = identity;
      (req.session as unknown as { passport?: { user?: unknown } }).passport = { user: identity };
    }
    next();
  };
}

/** The user a page request is for: routes behind {@link requireLogin} always have one. */
export function loggedInUser(req: Request): HubIdentity {
  if (!req.user) throw unauthenticated('Please log in.');
  return req.user;
}

/** Pages need a logged-in user: others are sent to login and brought back. */
export function requireLogin(prefix: string): RequestHandler {
  return (req, res, next) => {
    if (req.user) return next();
    if (req.method === 'GET' || req.method === 'HEAD') {
      res.redirect(`${prefix}login?next=${encodeURIComponent(req.originalUrl)}`);
      return;
    }
    throw unauthenticated('Your session has ended. Please log in again.');
  };
}
