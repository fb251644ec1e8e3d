/**
 * Express and its security set-up, apart from the wiring of services:
 * the app's own settings and the view engine, the security headers of pages
 * and of API answers, and what every page request passes (a session in the
 * database, passport with the hub's OAuth, the CSRF check). app.ts composes
 * them with the routes.
 */
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { ConnectSessionKnexStore } from 'connect-session-knex';
import { csrfSync } from 'csrf-sync';
import express, { type Express, type RequestHandler, type Router } from 'express';
import { engine } from 'express-handlebars';
import session from 'express-session';
import helmet from 'helmet';
import type { Knex } from 'knex';
import { Passport } from 'passport';
import { formatBytes } from '../format.js';
import type { HubClient } from '../hub/client.js';
import { HubIdentitySchema, type HubIdentity } from '../hub/identity.js';
import { HubOAuthStrategy } from '../hub/oauth.js';
import { createSessionTokenSealer, type SessionTokenSealer } from '../hub/sessionToken.js';
import type { TokenAuthenticator } from '../hub/tokenAuth.js';
import { VIEWS_DIR } from '../paths.js';
import { keepSessionCurrent } from './auth.js';

/** An Express app with the service's settings and its Handlebars views; no route yet. */
export function expressApp(options: { prefix: string; hubBaseUrl: string }): Express {
  const app = express();
  // The hub's proxy (configurable-http-proxy) sets X-Forwarded-*; it runs beside us, or on the cluster's
  // private network (Zero to JupyterHub). req.secure then says whether the browser's request was https.
  app.set('trust proxy', 'loopback, linklocal, uniquelocal');
  app.disable('x-powered-by');
  // API answers are no-store and pages carry a fresh CSRF token: an ETag (a hash of every body) would never match.
  app.set('etag', false);

  app.engine(
    'hbs',
    engine({
      extname: '.hbs',
      defaultLayout: 'main',
      layoutsDir: path.join(VIEWS_DIR, 'layouts'),
      partialsDir: path.join(VIEWS_DIR, 'partials'),
      // A standalone partial's lines are indented by default, a textarea's value with them (a Dockerfile shown back).
      compilerOptions: { preventIndent: true },
      helpers: {
        concat: (...parts: unknown[]) => parts.slice(0, -1).join(''),
        bytes: (value: unknown) => formatBytes(Number(value) || 0),
        join: (list: unknown) => (Array.isArray(list) ? list.join(', ') : ''),
        eq: (a: unknown, b: unknown) => a === b,
        iso: (value: unknown) => (value instanceof Date ? value.toISOString() : String(value ?? '')),
        // UTC, to the minute: the same for every reader, no client-side script needed.
        when: (value: unknown) => {
          const date = value instanceof Date ? value : new Date(String(value));
          return Number.isNaN(date.getTime()) ? '' : `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
        },
      },
    }),
  );
  app.set('view engine', 'hbs');
  // Templates do not change while the service runs: compile each once.
  app.set('view cache', true);
  app.set('views', VIEWS_DIR);
  app.locals.prefix = options.prefix;
  app.locals.hubHome = `${options.hubBaseUrl}hub/home`;
  return app;
}

/**
 * The security headers: a page's (helmet's, with a CSP for forms and data:
 * images), or an API answer's under `apiPrefix`; HSTS always on an https hub,
 * else with every answer to a request that came over https.
 */
export function securityHeaders(options: { apiPrefix: string; secureCookies: boolean }): RequestHandler[] {
  const pageHeaders = helmet({
    contentSecurityPolicy: {
      directives: {
        'form-action': ["'self'"],
        'img-src': ["'self'", 'data:'],
        // On a plain-http hub, upgrading would break every link and form.
        'upgrade-insecure-requests': options.secureCookies ? [] : null,
      },
    },
    // The hub may be served over plain http on a private network.
    strictTransportSecurity: options.secureCookies,
  });
  // A JSON answer is never rendered as a page: the API gets the headers OWASP's REST
  // cheat sheet lists (no sniffing, no framing, no referrer), not the dozen a page needs.
  const apiHeaders = helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { 'default-src': ["'none'"], 'frame-ancestors': ["'none'"] } },
    strictTransportSecurity: options.secureCookies,
    xFrameOptions: { action: 'deny' },
    crossOriginEmbedderPolicy: false,
    crossOriginOpenerPolicy: false,
    crossOriginResourcePolicy: false,
    originAgentCluster: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false,
    xXssProtection: false,
  });
  const handlers: RequestHandler[] = [
    (req, res, next) => (req.url.startsWith(options.apiPrefix) ? apiHeaders : pageHeaders)(req, res, next),
  ];
  // Without an https public URL, HSTS still goes with every answer to a request that came over https.
  if (!options.secureCookies) {
    handlers.push((req, res, next) => {
      if (req.secure) res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
      next();
    });
  }
  return handlers;
}

/** What the pages' set-up needs: the service's settings as config.ts parsed them, and the hub. */
export interface PageSetupOptions {
  db: Knex;
  hub: HubClient;
  authenticate: TokenAuthenticator;
  prefix: string;
  serviceName: string;
  hubApiUrl: string;
  hubPublicUrl: string | undefined;
  hubBaseUrl: string;
  clientId: string;
  apiToken: string;
  oauthCallbackUrl: string;
  accessScopes: readonly string[];
  cookieSecret: string | undefined;
  secureCookies: boolean;
  sessionHours: number;
  sessionMaxHours: number;
  /** Whether a logged-in user is a hub admin (the top bar's admin link). */
  isAdmin: (user: HubIdentity) => boolean;
  /**
   * Routes whose forms send files (multipart), with their parsers: they run
   * before the CSRF check reads the form's token, after the session.
   */
  multipart: { paths: string[]; handlers: RequestHandler[] };
}

/** The pages' router with sessions, login and the CSRF check in place, and what the login routes need. */
export interface PageSetup {
  router: Router;
  passport: InstanceType<typeof Passport>;
  sessionTokens: SessionTokenSealer;
  cookieName: string;
  /** Stops the session store's clean-up timer. */
  stop(): void;
}

/** The session cookie's name: one per service, so two services on one hub do not clash. */
function cookieName(serviceName: string): string {
  return `${serviceName}-session`;
}

/**
 * Sessions in the database (replicas share them), passport with the hub's
 * OAuth, the session kept in step with the hub, the user in every page's
 * locals, the bodies of forms, and the CSRF check with a token for each page.
 */
export function pageSetup(options: PageSetupOptions): PageSetup {
  const { prefix } = options;
  const store = new ConnectSessionKnexStore({ knex: options.db, tableName: 'sessions', createTable: false, cleanupInterval: 15 * 60_000 });
  const cookieSecret = options.cookieSecret ?? derivedCookieSecret(options.apiToken);
  const sessionTokens = createSessionTokenSealer(cookieSecret);
  const router = express.Router();
  router.use(
    session({
      name: cookieName(options.serviceName),
      secret: cookieSecret,
      store,
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: {
        httpOnly: true,
        sameSite: 'lax',
        // Secure whenever the browser's request was https (X-Forwarded-Proto from the hub's proxy).
        secure: options.secureCookies ? true : 'auto',
        path: prefix,
        maxAge: options.sessionHours * 3600_000,
      },
    }),
  );
  const passport = new Passport();
  passport.use(
    new HubOAuthStrategy(
      {
        apiUrl: options.hubApiUrl,
        publicUrl: options.hubPublicUrl,
        baseUrl: options.hubBaseUrl,
        clientId: options.clientId,
        clientSecret: options.apiToken,
        redirectUri: options.oauthCallbackUrl,
        accessScopes: options.accessScopes,
        hub: options.hub,
      },
      prefix,
    ),
  );
  passport.serializeUser((user, done) => done(null, user));
  passport.deserializeUser((stored: unknown, done) => {
    const parsed = HubIdentitySchema.safeParse(stored);
    done(null, parsed.success ? parsed.data : false);
  });
  router.use(passport.initialize(), passport.session());
  router.use(
    keepSessionCurrent({
      authenticate: options.authenticate,
      tokens: sessionTokens,
      maxAgeMs: options.sessionMaxHours * 3600_000,
      accessScopes: options.accessScopes,
    }),
  );
  router.use((req, res, next) => {
    res.locals.user = req.user;
    res.locals.isAdmin = req.user ? options.isAdmin(req.user) : false;
    next();
  });
  router.post(options.multipart.paths, ...options.multipart.handlers);
  router.use(express.urlencoded({ extended: false, limit: '64kb' }));
  const csrf = csrfSync({
    getTokenFromRequest: (req) => (req.body as { _csrf?: string } | undefined)?._csrf,
    errorConfig: { statusCode: 403, message: 'This form has expired or did not come from this site. Reload the page and try again.' },
  });
  router.use(csrf.csrfSynchronisedProtection);
  // Every page of a logged-in user carries the token for its forms (the top bar's logout is one).
  router.use((req, res, next) => {
    if (req.user) res.locals.csrfToken = req.csrfToken?.();
    next();
  });
  return {
    router,
    passport,
    sessionTokens,
    cookieName: cookieName(options.serviceName),
    stop: () => clearTimeout(store.nextDbCleanup),
  };
}

/**
 * Without CUSTOM_IMAGES_COOKIE_SECRET the cookie key is derived from the
 * service's API token, which every replica shares and which is never shown.
 */
function derivedCookieSecret(apiToken: string): string {
  return createHmac('sha256', apiToken).update('custom-images session cookie').digest('base64url');
}
