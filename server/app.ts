/**
 * The composition of the web application: `createApp(deps)` builds an Express
 * app from its dependencies, reads no environment and never listens.
 */
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { ConnectSessionKnexStore } from 'connect-session-knex';
import express, { type Express } from 'express';
import { engine } from 'express-handlebars';
import session from 'express-session';
import helmet from 'helmet';
import type { Knex } from 'knex';
import { Passport } from 'passport';
import type { Config } from './config.js';
import type { HubClient } from './hub/client.js';
import { HubOAuthStrategy } from './hub/oauth.js';
import { createTokenAuthenticator } from './hub/tokenAuth.js';
import { HubIdentitySchema } from './hub/identity.js';
import type { Logger } from './log.js';
import { VIEWS_DIR } from './paths.js';
import { apiRouter } from './web/api.js';
import { authRouter, keepSessionCurrent, requireLogin } from './web/auth.js';
import { createSessionTokenSealer } from './hub/sessionToken.js';
import { errorHandler, notFoundHandler } from './web/errors.js';
import { healthRouter } from './web/health.js';
import { createMetrics } from './web/metrics.js';
import { requestLog } from './web/requestLog.js';
import { csrfSync } from 'csrf-sync';
import { memoryLayerCache, tieredLayerCache } from './checks/layerCache.js';
import { CheckService } from './checks/service.js';
import { checkWorker as createCheckWorker } from './checks/worker.js';
import { PullService } from './pulls/service.js';
import { EngineImageStore } from './pulls/store.js';
import { PullWorker } from './pulls/worker.js';
import { CheckStore, databaseLayerCache } from './checks/store.js';
import { ImageService } from './images/service.js';
import { formatBytes } from './format.js';
import type { RegistryClient, RegistryCredentials } from './registry/client.js';
import type { ImageReference } from './registry/reference.js';
import { ImageStore } from './images/store.js';
import type { Keyring } from './secrets/keyring.js';
import { AccessRules } from './hub/access.js';
import { LaunchService } from './launch/service.js';
import { LaunchStore } from './launch/store.js';
import { HubGroups } from './hub/groups.js';
import { SharingService } from './sharing/service.js';
import { ShareStore } from './sharing/store.js';
import { AuditLog } from './audit/store.js';
import type { DockerEngine } from './runner/engine.js';
import type { WorkDir } from './workDir.js';
import { SystemService } from './systems/service.js';
import { BuildService } from './builds/service.js';
import { BuildStore } from './builds/store.js';
import { BuildWorker } from './builds/worker.js';
import { ReplicaStore } from './jobs/replicas.js';
import { GitFetcher } from './builds/git.js';
import { DockerBuilder } from './runner/dockerBuilder.js';
import { SystemStore } from './systems/store.js';
import { adminPagesRouter } from './web/adminPages.js';
import { imagePagesRouter } from './web/imagePages.js';
import { buildPagesRouter } from './web/buildPages.js';
import { buildUploads } from './web/uploads.js';
import { ForecastService } from './inventory/forecastService.js';
import { ForecastStore } from './inventory/forecastStore.js';
import { InventoryService } from './inventory/service.js';
import { forecastPagesRouter } from './web/forecastPages.js';
import { InventoryStore } from './inventory/store.js';
import { RevisionService } from './revisions/service.js';
import type { BuildDetails } from './builds/service.js';
import type { CheckRow } from './checks/store.js';
import type { System } from './systems/schema.js';
import { RevisionStore } from './revisions/store.js';
import { cachedInventories } from './revisions/inventoryCache.js';
import { revisionPagesRouter } from './web/revisionPages.js';
import './web/types.js';

/** Everything the app needs from outside; tests pass their own. */
export interface AppDeps {
  config: Config;
  db: Knex;
  hub: HubClient;
  logger: Logger;
  keyring: Keyring;
  registry: RegistryClient;
  /** The Docker engine for pulls and run checks; undefined when none is configured. */
  engine?: DockerEngine | undefined;
  /** Where temporary files go (git checkouts, build contexts, uploads); main opens it under config.workDir. */
  workDir: WorkDir;
}

/** Background work: started after listen, stopped (waiting for work in hand) at shutdown. */
export interface Workers {
  start(): void;
  stop(): Promise<void>;
}

/** The app plus what its owner must start and close. */
export interface App {
  app: Express;
  /** Runs queued check jobs and, with a Docker engine, pulls; main starts it after listen, stops it at shutdown. */
  worker: Workers;
  /**
   * Ends the long-lived responses (check progress streams) at shutdown: the
   * browser's EventSource reconnects, to another replica if there is one,
   * rather than holding this one until its grace period is over.
   */
  drain(): void;
  /** Stops background timers (session cleanup) and waits for audit writes; does not close `db`. */
  close(): Promise<void>;
  /** Creates the systems of a seed file that do not exist yet (CUSTOM_IMAGES_SYSTEMS_FILE); returns their slugs. */
  seedSystems(systems: unknown[]): Promise<string[]>;
}

/** Files one build may upload: "a few small files"; more belong in a git repository. */
const BUILD_UPLOAD_FILES = 20;

/** The session cookie's name: one per service, so two services on one hub do not clash. */
function cookieName(serviceName: string): string {
  return `${serviceName}-session`;
}

/** Builds the Express app. */
export function createApp(deps: AppDeps): App {
  const { config, db, hub, logger } = deps;
  const prefix = config.service.prefix;
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
  app.locals.prefix = prefix;
  app.locals.hubHome = `${config.hub.baseUrl}hub/home`;

  const metrics = createMetrics();
  app.use(requestLog({ logger, duration: metrics.duration }));
  const pageHeaders = helmet({
    contentSecurityPolicy: {
      directives: {
        'form-action': ["'self'"],
        'img-src': ["'self'", 'data:'],
        // On a plain-http hub, upgrading would break every link and form.
        'upgrade-insecure-requests': config.service.secureCookies ? [] : null,
      },
    },
    // The hub may be served over plain http on a private network.
    strictTransportSecurity: config.service.secureCookies,
  });
  // A JSON answer is never rendered as a page: the API gets the headers OWASP's REST
  // cheat sheet lists (no sniffing, no framing, no referrer), not the dozen a page needs.
  const apiHeaders = helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { 'default-src': ["'none'"], 'frame-ancestors': ["'none'"] } },
    strictTransportSecurity: config.service.secureCookies,
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
  const apiPrefix = `${prefix}api/`;
  app.use((req, res, next) => (req.url.startsWith(apiPrefix) ? apiHeaders : pageHeaders)(req, res, next));
  // Without an https public URL, HSTS still goes with every answer to a request that came over https.
  if (!config.service.secureCookies) {
    app.use((req, res, next) => {
      if (req.secure) res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
      next();
    });
  }

  const authenticate = createTokenAuthenticator({ hub, cacheSeconds: config.authCacheSeconds });
  const access = new AccessRules(config.hub.accessScopes);
  const buildStore = new BuildStore(db);
  const systems = new SystemService({
    store: new SystemStore(db),
    keyring: deps.keyring,
    defaultSystem: config.defaultSystem,
    access,
    pushedBy: (repository) => buildStore.pushersOf(repository),
    buildProcessLimit: config.builds.cgroupParent !== undefined,
  });
  const checkStore = new CheckStore(db);
  // Images kept in the engine for launches: pulled after a check passes, removed when unused.
  const engineImages = new EngineImageStore(db);
  const pullWorker: PullWorker | undefined = deps.engine
    ? new PullWorker({
        db,
        store: engineImages,
        engine: deps.engine,
        credentials: (owner: string, imageId: number, reference: ImageReference): Promise<RegistryCredentials | undefined> =>
          images.pullCredentials(owner, imageId, reference),
        mayPull: (registry) => deps.registry.assertEngineMayPull(registry),
        logger,
        timeoutMs: config.pulls.timeoutMs,
        keepDays: config.pulls.keepDays,
        budgetBytes: config.pulls.budgetBytes,
      })
    : undefined;
  const pulls: PullService | undefined =
    deps.engine && pullWorker ? new PullService({ store: engineImages, engine: deps.engine, wake: () => pullWorker.nudge() }) : undefined;
  const imageStore = new ImageStore(db);
  const images = new ImageService({
    store: imageStore,
    access,
    systems,
    keyring: deps.keyring,
    checks: checkStore,
    builds: buildStore,
    readiness: pulls,
    siteCredentials: (reference, owner, candidates) => systems.credentialFor(reference, owner, candidates),
    builtImageProblem: (reference, user) => systems.builtImageProblem(reference, user),
  });
  const audit = new AuditLog(db);
  const sharing = new SharingService({
    access,
    images,
    imageStore,
    shares: new ShareStore(db),
    groups: new HubGroups(hub, config.authCacheSeconds),
    systems,
    checks: checkStore,
    audit,
  });
  const inventoryStore = new InventoryStore(db);
  // Revisions of images: recorded as checks end, started, rolled back to, compared and exported.
  const revisions: RevisionService = new RevisionService({
    store: new RevisionStore(db),
    access,
    images,
    imageStore,
    checks: checkStore,
    // A diff reads two inventories; the same ones are often asked again (a page reloaded, another export).
    inventories: cachedInventories(inventoryStore, 32),
    systems,
    buildsOf: (owner, imageId) => buildStore.forImage(owner, imageId),
    builds: {
      get: (actor, owner, imageId, number): Promise<BuildDetails> => builds.get(actor, owner, imageId, number),
      systemsFor: (actor): Promise<System[]> => builds.systemsFor(actor),
    },
    queueCheck: (owner, imageId, options): Promise<CheckRow> => checks.queue(owner, imageId, options),
    sharing,
    logger,
  });
  const launchStore = new LaunchStore(db);
  const launches = new LaunchService({
    audit,
    access,
    store: launchStore,
    images,
    systems,
    registry: deps.registry,
    engine: deps.engine,
    pulls,
    pullTimeoutMs: config.pulls.timeoutMs,
    sharing,
    revisions,
  });
  const inventories = new InventoryService({ store: inventoryStore, images, checks: checkStore });
  const forecasts = new ForecastService({
    store: new ForecastStore(db),
    inventories: inventoryStore,
    systems,
    access,
    hubVersion: () => hub.version().catch(() => undefined),
    checks: checkStore,
  });
  const checks = new CheckService({
    store: checkStore,
    access,
    // A queued check wakes this replica's worker at once (the others find it at their next poll).
    onQueued: () => checkWorker.nudge(),
    images,
    systems,
    registry: deps.registry,
    layers: tieredLayerCache(memoryLayerCache(), databaseLayerCache(db)),
    inventories: inventoryStore,
    hub,
    engine: config.checks.runImages ? deps.engine : undefined,
    runLimits: config.checks.run,
    deadlineMs: config.checks.deadlineMs,
    maxQueuedPerUser: config.checks.maxQueuedPerUser,
    maxStreamsPerUser: config.checks.maxStreamsPerUser,
    keyring: deps.keyring,
    pullTimeoutMs: config.pulls.timeoutMs,
    keepPulledImages: config.checks.keepPulledImages,
    pulls,
    onEnded: (checkId): Promise<void> => revisions.recordCheck(checkId),
  });
  const checkWorker = createCheckWorker({
    db,
    store: checkStore,
    checks,
    engine: config.checks.runImages ? deps.engine : undefined,
    logger,
    concurrency: config.checks.concurrency,
  });
  const replicas = new ReplicaStore(db);
  const builds = new BuildService({
    store: buildStore,
    images,
    imageStore,
    systems,
    access,
    keyring: deps.keyring,
    registry: deps.registry,
    git: new GitFetcher({
      trustedHosts: config.builds.trustedGitHosts,
      maxBytes: config.builds.gitMaxBytes,
      checkout: {
        maxBytes: config.builds.checkoutBytes,
        maxFiles: config.builds.checkoutFiles,
        maxObjectBytes: config.builds.gitFileBytes,
      },
      workDir: deps.workDir,
      timeoutMs: config.registries.timeoutMs,
    }),
    workDir: deps.workDir,
    builder: deps.engine ? new DockerBuilder(deps.engine) : undefined,
    check: (owner, imageId) => checks.queue(owner, imageId),
    limits: {
      dockerfileBytes: 64 * 1024,
      uploadBytes: config.builds.uploadBytes,
      uploadFiles: BUILD_UPLOAD_FILES,
      contextBytes: config.builds.contextBytes,
    },
    builderLimits: {
      memoryBytes: config.builds.memoryBytes,
      cpus: config.builds.cpus,
      timeoutMs: config.builds.timeoutMs,
      cgroupParent: config.builds.cgroupParent,
      diskBytes: config.builds.diskBytes,
      imageBytes: config.builds.imageBytes,
    },
    maxQueuedPerUser: config.builds.maxQueuedPerUser,
    maxStreamsPerUser: config.checks.maxStreamsPerUser,
    onQueued: () => buildWorker.nudge(),
    replicas,
    logger,
  });
  const buildWorker = new BuildWorker({
    db,
    store: buildStore,
    builds,
    canBuild: deps.engine !== undefined,
    replicas,
    logger,
    concurrency: config.builds.concurrency,
  });
  const worker: Workers = {
    start() {
      checkWorker.start();
      pullWorker?.start();
      buildWorker.start();
    },
    async stop() {
      await Promise.all([checkWorker.stop(), pullWorker?.stop(), buildWorker.stop()]);
    },
  };
  // The API on the app itself, before everything the pages need.
  const uploads = buildUploads({ uploadBytes: config.builds.uploadBytes, uploadFiles: BUILD_UPLOAD_FILES }, deps.workDir);
  app.use(
    `${apiPrefix}v1`,
    apiRouter({
      authenticate,
      systems,
      launches,
      images,
      checks,
      sharing,
      builds,
      inventories,
      forecasts,
      buildUploads: uploads,
      revisions,
    }),
  );
  const draining = new AbortController();
  const router = express.Router();
  router.use('/static', express.static(path.join(VIEWS_DIR, 'static'), { maxAge: '1h' }));
  router.use(healthRouter({ db, registry: metrics.registry, authenticate }));

  // Pages: sessions live in the database so that replicas share them.
  const store = new ConnectSessionKnexStore({ knex: db, tableName: 'sessions', createTable: false, cleanupInterval: 15 * 60_000 });
  const cookieSecret = config.service.cookieSecret ?? derivedCookieSecret(config.hub.apiToken);
  const sessionTokens = createSessionTokenSealer(cookieSecret);
  const pages = express.Router();
  pages.use(
    session({
      name: cookieName(config.hub.serviceName),
      secret: cookieSecret,
      store,
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: {
        httpOnly: true,
        sameSite: 'lax',
        // Secure whenever the browser's request was https (X-Forwarded-Proto from the hub's proxy).
        secure: config.service.secureCookies ? true : 'auto',
        path: prefix,
        maxAge: config.service.sessionHours * 3600_000,
      },
    }),
  );
  const passport = new Passport();
  passport.use(
    new HubOAuthStrategy(
      {
        apiUrl: config.hub.apiUrl,
        publicUrl: config.hub.publicUrl,
        baseUrl: config.hub.baseUrl,
        clientId: config.hub.clientId,
        clientSecret: config.hub.apiToken,
        redirectUri: config.hub.oauthCallbackUrl,
        accessScopes: config.hub.accessScopes,
        hub,
      },
      prefix,
    ),
  );
  passport.serializeUser((user, done) => done(null, user));
  passport.deserializeUser((stored: unknown, done) => {
    const parsed = HubIdentitySchema.safeParse(stored);
    done(null, parsed.success ? parsed.data : false);
  });
  pages.use(passport.initialize(), passport.session());
  pages.use(
    keepSessionCurrent({
      authenticate,
      tokens: sessionTokens,
      maxAgeMs: config.service.sessionMaxHours * 3600_000,
      accessScopes: config.hub.accessScopes,
    }),
  );
  pages.use((req, res, next) => {
    res.locals.user = req.user;
    res.locals.isAdmin = req.user ? access.isAdmin(req.user) : false;
    next();
  });
  // A build form sends files (multipart): parsed before the CSRF check reads its token, for logged-in users only.
  pages.post(['/builds', '/images/:id/rebuild'], requireLogin(prefix), ...uploads);
  pages.use(express.urlencoded({ extended: false, limit: '64kb' }));
  const csrf = csrfSync({
    getTokenFromRequest: (req) => (req.body as { _csrf?: string } | undefined)?._csrf,
    errorConfig: { statusCode: 403, message: 'This form has expired or did not come from this site. Reload the page and try again.' },
  });
  pages.use(csrf.csrfSynchronisedProtection);
  // Every page of a logged-in user carries the token for its forms (the top bar's logout is one).
  pages.use((req, res, next) => {
    if (req.user) res.locals.csrfToken = req.csrfToken?.();
    next();
  });
  pages.use(
    authRouter({
      passport,
      prefix,
      hubLogoutUrl: `${config.hub.baseUrl}hub/logout`,
      cookieName: cookieName(config.hub.serviceName),
      tokens: sessionTokens,
    }),
  );
  pages.use(
    requireLogin(prefix),
    imagePagesRouter({ images, checks, sharing, builds, inventories, forecasts, prefix, draining: draining.signal, revisions }),
    buildPagesRouter({
      builds,
      images,
      prefix,
      draining: draining.signal,
      prefill: (actor, from, number) => revisions.buildFrom(actor, actor.name, from, number),
    }),
    revisionPagesRouter({ revisions, images, sharing, prefix }),
    adminPagesRouter({ systems, sharing, prefix }),
    forecastPagesRouter({ forecasts, systems, prefix }),
  );
  router.use(pages);

  app.use(prefix, router);
  app.use(notFoundHandler());
  app.use(errorHandler({ logger, apiPrefix, loginUrl: `${prefix}login` }));

  return {
    app,
    worker,
    seedSystems: (list) => systems.seed(list),
    drain: () => draining.abort(),
    async close() {
      clearTimeout(store.nextDbCleanup);
      await audit.drain();
    },
  };
}

/**
 * Without CUSTOM_IMAGES_COOKIE_SECRET the cookie key is derived from the
 * service's API token, which every replica shares and which is never shown.
 */
function derivedCookieSecret(apiToken: string): string {
  return createHmac('sha256', apiToken).update('custom-images session cookie').digest('base64url');
}
