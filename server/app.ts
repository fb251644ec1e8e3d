/**
 * The composition root of the web application: `createApp(deps)` makes every
 * store and service from its dependencies, top-down (each made before
 * anything uses it): systems, images, pulls, sharing, launches, checks and
 * builds, the workers that run checks, pulls and builds, then the routes of
 * the JSON API and the pages. It reads no environment and never listens;
 * Express and its security set-up are web/setup.ts's.
 */
import express, { type Express } from 'express';
import type { Knex } from 'knex';
import path from 'node:path';
import { AuditLog } from './audit/store.js';
import { BuildService } from './builds/service.js';
import { BuildStore } from './builds/store.js';
import { BuildWorker } from './builds/worker.js';
import { GitFetcher } from './builds/git.js';
import { memoryLayerCache, tieredLayerCache } from './checks/layerCache.js';
import { CheckService } from './checks/service.js';
import { CheckStore, databaseLayerCache } from './checks/store.js';
import { checkWorker as createCheckWorker } from './checks/worker.js';
import type { Config } from './config.js';
import { AccessRules } from './hub/access.js';
import type { HubClient } from './hub/client.js';
import { HubGroups } from './hub/groups.js';
import { createTokenAuthenticator } from './hub/tokenAuth.js';
import { ImageService } from './images/service.js';
import { ImageStore } from './images/store.js';
import { ReplicaStore } from './jobs/replicas.js';
import { Wakeup } from './jobs/wakeup.js';
import { Foreground } from './jobs/foreground.js';
import { LaunchService } from './launch/service.js';
import { LaunchStore } from './launch/store.js';
import type { Logger } from './log.js';
import { VIEWS_DIR } from './paths.js';
import { PullService } from './pulls/service.js';
import { EngineImageStore } from './pulls/store.js';
import { PullWorker } from './pulls/worker.js';
import type { RegistryClient } from './registry/client.js';
import { DockerBuilder } from './runner/dockerBuilder.js';
import type { DockerEngine } from './runner/engine.js';
import type { Keyring } from './secrets/keyring.js';
import { SharingService } from './sharing/service.js';
import { ShareStore } from './sharing/store.js';
import { SystemService } from './systems/service.js';
import { SystemStore } from './systems/store.js';
import { adminPagesRouter } from './web/adminPages.js';
import { apiRouter } from './web/api.js';
import { authRouter, requireLogin } from './web/auth.js';
import { buildPagesRouter } from './web/buildPages.js';
import { errorHandler, notFoundHandler } from './web/errors.js';
import { healthRouter } from './web/health.js';
import { imagePagesRouter } from './web/imagePages.js';
import { createMetrics } from './web/metrics.js';
import { requestLog } from './web/requestLog.js';
import { expressApp, pageSetup, securityHeaders } from './web/setup.js';
import { createStorage } from './storage/index.js';
import { storagePagesRouter } from './web/storagePages.js';
import { registerStorageMetrics } from './web/storageMetrics.js';
import './web/types.js';
import { buildUploads } from './web/uploads.js';

import type { WorkDir } from './workDir.js';
import { ForecastService } from './inventory/forecastService.js';
import { ForecastStore } from './inventory/forecastStore.js';
import { InventoryService } from './inventory/service.js';
import { InventoryStore } from './inventory/store.js';
import { RevisionService } from './revisions/service.js';
import { RevisionStore } from './revisions/store.js';
import { cachedInventories } from './revisions/inventoryCache.js';
import { forecastPagesRouter } from './web/forecastPages.js';
import { revisionPagesRouter } from './web/revisionPages.js';
import { ImageHistory } from './images/history.js';
import { historyPagesRouter } from './web/historyRoutes.js';
import { LinkService } from './links/service.js';
import { LinkLaunchStore } from './links/launchStore.js';
import { LinkStore } from './links/store.js';
import { badgeRouter, linkPagesRouter } from './web/linkRoutes.js';
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
  /** Runs queued checks, builds and, with a Docker engine, pulls; main starts it after listen, stops it at shutdown. */
  worker: Workers;
  /**
   * Ends the long-lived responses (check and build progress streams) at shutdown: the
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

/** Builds the Express app. */
export function createApp(deps: AppDeps): App {
  const { config, db, hub, logger } = deps;
  const prefix = config.service.prefix;
  const apiPrefix = `${prefix}api/`;
  const app = expressApp({ prefix, hubBaseUrl: config.hub.baseUrl });
  const metrics = createMetrics();
  app.use(requestLog({ logger, duration: metrics.duration }));
  app.use(securityHeaders({ apiPrefix, secureCookies: config.service.secureCookies }));

  // Who asks, and what they may do.
  const authenticate = createTokenAuthenticator({ hub, cacheSeconds: config.authCacheSeconds });
  const access = new AccessRules(config.hub.accessScopes);
  const audit = new AuditLog(db);

  // Stores: each feature's rows.
  const imageStore = new ImageStore(db);
  const checkStore = new CheckStore(db);
  const buildStore = new BuildStore(db);
  // Images kept in the engine for launches: pulled after a check passes, removed when unused.
  const engineImages = new EngineImageStore(db);
  const replicas = new ReplicaStore(db);
  const inventoryStore = new InventoryStore(db);

  // Each worker is made after the service whose jobs it runs; the service wakes it through these.
  const checkQueued = new Wakeup();
  const pullQueued = new Wakeup();
  const buildQueued = new Wakeup();

  // Services, each after what it uses.
  const systems = new SystemService({
    store: new SystemStore(db),
    keyring: deps.keyring,
    defaultSystem: config.defaultSystem,
    access,
    pushedBy: (repository) => buildStore.pushersOf(repository),
    buildProcessLimit: config.builds.cgroupParent !== undefined,
  });
  const pulls: PullService | undefined = deps.engine
    ? new PullService({ store: engineImages, engine: deps.engine, wake: pullQueued.ring })
    : undefined;
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
    // Quotas and the clean-up (storage/): declared below, called on requests only.
    quota: (owner, system, adding) => storage.quota(owner, system, adding),
    onDelete: (store, imageId, now) => storage.onDelete(store, imageId, now),
  });
  // Launches, which background work gives way to: someone is waiting for their server.
  const foreground = new Foreground();
  const storage = createStorage({
    db,
    access,
    hub,
    registry: deps.registry,
    engine: deps.engine,
    logger,
    defaults: config.storage.defaults,
    everyMs: config.storage.everyMs,
    defaultSystem: config.defaultSystem,
    credentialFor: (reference, owner) => systems.credentialFor(reference, owner),
    images: () => images,
    foreground,
  });
  registerStorageMetrics(metrics.registry, storage.service);
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
  const checks = new CheckService({
    store: checkStore,
    access,
    // A queued check wakes this replica's worker at once (the others find it at their next poll).
    onQueued: checkQueued.ring,
    audit,
    images,
    systems,
    registry: deps.registry,
    layers: tieredLayerCache(memoryLayerCache(), databaseLayerCache(db)),
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
    inventories: inventoryStore,
    // A check that ended records the revision it saw (revisions, made below: called only once checks run).
    onEnded: (checkId): Promise<void> => revisions.recordCheck(checkId),
  });
  const uploadLimits = { uploadBytes: config.builds.uploadBytes, uploadFiles: BUILD_UPLOAD_FILES };
  const git = new GitFetcher({
    trustedHosts: config.builds.trustedGitHosts,
    maxBytes: config.builds.gitMaxBytes,
    checkout: {
      maxBytes: config.builds.checkoutBytes,
      maxFiles: config.builds.checkoutFiles,
      maxObjectBytes: config.builds.gitFileBytes,
    },
    workDir: deps.workDir,
    timeoutMs: config.registries.timeoutMs,
  });
  const builds = new BuildService({
    store: buildStore,
    images,
    imageStore,
    systems,
    access,
    keyring: deps.keyring,
    registry: deps.registry,
    git,
    builder: deps.engine ? new DockerBuilder(deps.engine) : undefined,
    // A built image is checked like any other.
    check: (owner, imageId) => checks.queue(owner, imageId),
    limits: { dockerfileBytes: 64 * 1024, ...uploadLimits, contextBytes: config.builds.contextBytes },
    workDir: deps.workDir,
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
    onQueued: buildQueued.ring,
    replicas,
    logger,
    quota: storage.quota,
  });
  // Revisions of images: recorded as checks end, started, rolled back to, compared and exported.
  const revisions = new RevisionService({
    store: new RevisionStore(db),
    access,
    images,
    imageStore,
    checks: checkStore,
    // A diff reads two inventories; the same ones are often asked again (a page reloaded, another export).
    inventories: cachedInventories(inventoryStore, 32),
    systems,
    buildsOf: (owner, imageId) => buildStore.forImage(owner, imageId),
    builds,
    queueCheck: (owner, imageId, options) => checks.queue(owner, imageId, options),
    sharing,
    logger,
  });
  // An image's history, read from the audit log the services above write.
  const history = new ImageHistory({ access, store: imageStore });
  const launches = new LaunchService({
    audit,
    access,
    store: new LaunchStore(db),
    images,
    systems,
    registry: deps.registry,
    engine: deps.engine,
    pulls,
    pullTimeoutMs: config.pulls.timeoutMs,
    sharing,
    revisions,
    foreground,
  });
  // Launch links: a repository opened in the visitor's own server, built first if need be.
  const links = new LinkService({
    store: new LinkStore(db),
    launches: new LinkLaunchStore(db),
    access,
    systems,
    git,
    builds,
    images,
    hub,
    hubBaseUrl: config.hub.baseUrl,
    logger,
    gitTimeoutMs: config.registries.timeoutMs,
    buildTimeoutMs: 2 * config.builds.timeoutMs + config.checks.deadlineMs,
  });
  const linkRoutes = {
    links,
    hosts: config.links.hosts,
    trustedGitHost: (host: string) => git.isTrusted(host),
    prefix,
  };
  const inventories = new InventoryService({ store: inventoryStore, images, checks: checkStore });
  const forecasts = new ForecastService({
    store: new ForecastStore(db),
    inventories: inventoryStore,
    systems,
    access,
    hubVersion: () => hub.version().catch(() => undefined),
    checks: checkStore,
  });

  // Workers: checks on every replica, pulls and builds where there is a Docker engine (a replica without
  // one still runs the build worker's housekeeping: it ends builds no replica could take).
  const checkWorker = createCheckWorker({
    db,
    store: checkStore,
    checks,
    engine: config.checks.runImages ? deps.engine : undefined,
    logger,
    concurrency: config.checks.concurrency,
  });
  checkQueued.answerWith(() => checkWorker.nudge());
  const pullWorker: PullWorker | undefined = deps.engine
    ? new PullWorker({
        db,
        store: engineImages,
        engine: deps.engine,
        credentials: (owner, imageId, reference) => images.pullCredentials(owner, imageId, reference),
        mayPull: (registry) => deps.registry.assertEngineMayPull(registry),
        logger,
        timeoutMs: config.pulls.timeoutMs,
        keepDays: config.pulls.keepDays,
        budgetBytes: config.pulls.budgetBytes,
      })
    : undefined;
  if (pullWorker) pullQueued.answerWith(() => pullWorker.nudge());
  const buildWorker = new BuildWorker({
    db,
    store: buildStore,
    builds,
    canBuild: deps.engine !== undefined,
    replicas,
    logger,
    concurrency: config.builds.concurrency,
  });
  buildQueued.answerWith(() => buildWorker.nudge());
  const worker: Workers = {
    start() {
      checkWorker.start();
      pullWorker?.start();
      buildWorker.start();
      storage.worker.start();
    },
    async stop() {
      await Promise.all([checkWorker.stop(), pullWorker?.stop(), buildWorker.stop(), storage.worker.stop()]);
    },
  };

  // The API on the app itself, before everything the pages need.
  const uploads = buildUploads(uploadLimits, deps.workDir);
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
      storage: storage.service,
      history,
      links: linkRoutes,
    }),
  );
  const draining = new AbortController();
  const router = express.Router();
  router.use('/static', express.static(path.join(VIEWS_DIR, 'static'), { maxAge: '1h' }));
  router.use(healthRouter({ db, registry: metrics.registry, authenticate }));
  router.use(badgeRouter());

  // Pages: sessions, login and the CSRF check (web/setup.ts), then the routes of each resource.
  const pages = pageSetup({
    db,
    hub,
    authenticate,
    prefix,
    serviceName: config.hub.serviceName,
    hubApiUrl: config.hub.apiUrl,
    hubPublicUrl: config.hub.publicUrl,
    hubBaseUrl: config.hub.baseUrl,
    clientId: config.hub.clientId,
    apiToken: config.hub.apiToken,
    oauthCallbackUrl: config.hub.oauthCallbackUrl,
    accessScopes: config.hub.accessScopes,
    cookieSecret: config.service.cookieSecret,
    secureCookies: config.service.secureCookies,
    sessionHours: config.service.sessionHours,
    sessionMaxHours: config.service.sessionMaxHours,
    isAdmin: (user) => access.isAdmin(user),
    // A build form sends files (multipart): parsed before the CSRF check reads its token, for logged-in users only.
    multipart: { paths: ['/builds', '/images/:id/rebuild'], handlers: [requireLogin(prefix), ...uploads] },
  });
  pages.router.use(
    authRouter({
      passport: pages.passport,
      prefix,
      hubLogoutUrl: `${config.hub.baseUrl}hub/logout`,
      cookieName: pages.cookieName,
      tokens: pages.sessionTokens,
    }),
  );
  pages.router.use(
    requireLogin(prefix),
    imagePagesRouter({
      images,
      checks,
      sharing,
      builds,
      inventories,
      forecasts,
      prefix,
      draining: draining.signal,
      revisions,
      storage: storage.service,
    }),
    buildPagesRouter({
      builds,
      images,
      prefix,
      draining: draining.signal,
      prefill: (actor, from, number) => revisions.buildFrom(actor, actor.name, from, number),
      publicOrigin: config.hub.publicUrl ? new URL(config.hub.publicUrl).origin : undefined,
    }),
    revisionPagesRouter({ revisions, images, sharing, prefix }),
    historyPagesRouter({ history, images }),
    linkPagesRouter(linkRoutes),
    forecastPagesRouter({ forecasts, systems, prefix }),
    adminPagesRouter({ systems, sharing, prefix }),
    storagePagesRouter({ storage: storage.service, prefix }),
  );
  router.use(pages.router);

  app.use(prefix, router);
  app.use(notFoundHandler());
  app.use(errorHandler({ logger, apiPrefix, loginUrl: `${prefix}login` }));

  return {
    app,
    worker,
    seedSystems: (list) => systems.seed(list),
    drain: () => draining.abort(),
    async close() {
      pages.stop();
      await audit.drain();
    },
  };
}
