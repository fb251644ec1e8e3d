/** Systems and launch parameters in the JSON API v1. */
import type { Router } from 'express';
import type { LaunchService } from '../launch/service.js';
import type { SystemService } from '../systems/service.js';
import { identityOf } from './apiAuth.js';
import { parseApiId, parseUserName } from './params.js';
import { parseRevision } from '../revisions/schema.js';
import { presentLaunch } from './presenters/launch.js';
import { presentSystem } from './presenters/systems.js';

/** Adds the system and launch routes to the API router (behind its token check). */
export function launchApiRoutes(router: Router, deps: { systems: SystemService; launches: LaunchService }): void {
  router.get('/systems', async (req, res) => {
    res.json((await deps.systems.listFor(identityOf(req))).map(presentSystem));
  });

  router.get('/users/:name/images/:id/launch', async (req, res) => {
    // LaunchService shapes the answer (LaunchParams); ?revision=N starts one of the image's kept revisions.
    const revision = parseRevision(req.query.revision);
    const params = await deps.launches.launch(identityOf(req), parseUserName(req.params.name), parseApiId(req.params.id), revision);
    res.set('Cache-Control', 'no-store').json(presentLaunch(params));
  });
}
