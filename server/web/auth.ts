/**
 * Browser login routes (login, oauth_callback, logout) and the guard that
 * sends anonymous visitors of a page to the hub.
 */
import { Router, type RequestHandler } from 'express';
import type { Passport } from 'passport';
import { AppError } from '../errors.js';

export interface AuthRoutesOptions {
  passport: InstanceType<typeof Passport>;
  /** The service prefix, e.g. /services/custom-images/. */
  prefix: string;
  /** Where the browser goes after our session ends: the hub's own logout. */
  hubLogoutUrl: string;
  /** The session cookie, cleared at logout. */
  cookieName: string;
}

/** login, oauth_callback and logout, relative to the service prefix. */
export function authRouter(options: AuthRoutesOptions): Router {
  const router = Router();
  router.get('/login', options.passport.authenticate('jupyterhub'));

  router.get('/oauth_callback', (req, res, next) => {
    options.passport.authenticate(
      'jupyterhub',
      (err: unknown, user: Express.User | false, info?: { next?: string; message?: string }) => {
        if (err) return next(err);
        if (!user) return next(new AppError(403, 'forbidden', info?.message ?? 'Login refused.'));
        // passport >= 0.6 regenerates the session here, against session fixation.
        req.logIn(user, (loginErr) => {
          if (loginErr) return next(loginErr);
          res.redirect(info?.next ?? options.prefix);
        });
      },
    )(req, res, next);
  });

  router.get('/logout', (req, res, next) => {
    req.logout((logoutErr) => {
      if (logoutErr) return next(logoutErr);
      req.session.destroy((destroyErr) => {
        if (destroyErr) return next(destroyErr);
        res.clearCookie(options.cookieName, { path: options.prefix });
        res.redirect(options.hubLogoutUrl);
      });
    });
  });
  return router;
}

/** Pages need a logged-in user: others are sent to login and brought back. */
export function requireLogin(prefix: string): RequestHandler {
  return (req, res, next) => {
    if (req.user) return next();
    if (req.method === 'GET' || req.method === 'HEAD') {
      res.redirect(`${prefix}login?next=${encodeURIComponent(req.originalUrl)}`);
      return;
    }
    throw new AppError(401, 'unauthenticated', 'Your session has ended. Please log in again.');
  };
}
