/**
 * The JSON API, v1, under {prefix}api/v1/: one router, mounted on the app
 * itself. Every route passes its token check first, and an unknown path is a
 * JSON 404, never the login page. Every answer is parsed by its zod schema,
 * kept with its presenter (web/presenters/, one file per resource: images,
 * checks, builds, systems, sharing, launch); errors by web/errors.ts's.
 */
import express, { Router, type RequestHandler } from 'express';
import type { CheckService } from '../checks/service.js';
import type { TokenAuthenticator } from '../hub/tokenAuth.js';
import { HubIdentitySchema } from '../hub/identity.js';
import type { ImageService } from '../images/service.js';
import type { LaunchService } from '../launch/service.js';
import type { SharingService } from '../sharing/service.js';
import type { SystemService } from '../systems/service.js';
import { identityOf, requireToken } from './apiAuth.js';
import { notFoundHandler } from './errors.js';
import { imageApiRoutes } from './imageApi.js';
import { launchApiRoutes } from './launchApi.js';
import { shareApiRoutes } from './shareApi.js';
import { buildApiRoutes } from './buildApi.js';
import type { BuildService } from '../builds/service.js';
import type { StorageService } from '../storage/service.js';
import { storageApiRoutes } from './storageApi.js';
import type { RevisionService } from '../revisions/service.js';
import { revisionApiRoutes } from './revisionApi.js';
import type { InventoryService } from '../inventory/service.js';
import { inventoryApiRoutes } from './inventoryApi.js';
import type { ForecastService } from '../inventory/forecastService.js';
import { forecastApiRoutes } from './forecastApi.js';
import type { ImageHistory } from '../images/history.js';
import { historyApiRoutes } from './historyRoutes.js';
import { linkApiRoutes, type LinkRouteDeps } from './linkRoutes.js';

/** `GET api/v1/me`: who the token belongs to, as the service sees it. */
export const MeResponseSchema = HubIdentitySchema.pick({ kind: true, name: true, admin: true, groups: true, scopes: true });

export interface ApiDeps {
  authenticate: TokenAuthenticator;
  systems: SystemService;
  launches: LaunchService;
  images: ImageService;
  checks: CheckService;
  sharing: SharingService;
  builds: BuildService;
  /** Quotas, the clean-up and users' data (storage/); without it, those routes are not there. */
  storage?: StorageService;
  /** Reads a build request's body, files included (web/uploads.ts). */
  buildUploads: RequestHandler[];
  inventories: InventoryService;
  forecasts: ForecastService;
  revisions: RevisionService;
  history: ImageHistory;
  /** Launch links (`open`); without them, those routes are not there. */
  links?: LinkRouteDeps;
}

export function apiRouter(deps: ApiDeps): Router {
  const router = Router();
  // No body is read before the token is known.
  router.use(requireToken(deps.authenticate));
  // Build requests carry Dockerfiles and files: their own, larger limits, before the small default.
  router.post(['/users/:name/builds', '/users/:name/images/:id/builds'], ...deps.buildUploads);
  router.use(express.json({ limit: '64kb' }));
  // Launches first: the hook's call at every server start passes the fewest routes. One router
  // on the app, not routers nested in the prefix's: each dispatch costs (bench/README.md).
  launchApiRoutes(router, deps);
  router.get('/me', (req, res) => {
    res.json(MeResponseSchema.parse(identityOf(req)));
  });
  imageApiRoutes(router, deps);
  inventoryApiRoutes(router, deps);
  forecastApiRoutes(router, deps);
  shareApiRoutes(router, deps);
  buildApiRoutes(router, deps);
  if (deps.storage) storageApiRoutes(router, { storage: deps.storage, systems: deps.systems });
  revisionApiRoutes(router, deps);
  historyApiRoutes(router, deps);
  if (deps.links) linkApiRoutes(router, deps.links);
  router.use(notFoundHandler());
  return router;
}
