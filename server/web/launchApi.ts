/** Systems and launch parameters in the JSON API v1. */
import type { Router } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { SCOPES, hasAccessScope, hasScope, isServiceAdmin } from '../hub/identity.js';
import type { LaunchService } from '../launch/service.js';
import type { SystemService } from '../systems/service.js';
import { identityOf } from './apiAuth.js';
import { authorizeUser, parseApiId } from './imageApi.js';

export const SystemResponseSchema = z.object({
  slug: z.string(),
  displayName: z.string(),
  description: z.string(),
  enabled: z.boolean(),
  allowedRegistries: z.array(z.string()),
  mountPrefixes: z.array(z.string()),
  defaultMountPath: z.string(),
  platform: z.string(),
  spawner: z.enum(['docker', 'kubernetes']),
  policy: z.object({
    runCheck: z.boolean(),
    uid: z.number().int(),
    uidMax: z.number().int().optional(),
    gid: z.number().int(),
    requireUser: z.boolean(),
    requirePip: z.boolean(),
    python: z.object({ min: z.string().optional(), max: z.string().optional() }),
  }),
});

/** Adds the system and launch routes to the API router (behind its token check). */
export function launchApiRoutes(router: Router, deps: { systems: SystemService; launches: LaunchService; accessScopes: readonly string[] }): void {
  router.get('/systems', async (req, res) => {
    const identity = identityOf(req);
    if (!hasAccessScope(identity, deps.accessScopes) && !hasScope(identity, SCOPES.launch) && !isServiceAdmin(identity)) {
      throw new AppError(403, 'forbidden', `This token has no access to custom-images; it needs the scope ${deps.accessScopes[0]}`);
    }
    // Admins also see disabled systems.
    const all = await deps.systems.listAll();
    const systems = isServiceAdmin(identity) && all.length > 0 ? all : await deps.systems.listEnabled();
    res.json(systems.map((s) => SystemResponseSchema.parse(s)));
  });

  router.get('/users/:name/images/:id/launch', async (req, res) => {
    const identity = identityOf(req);
    const name = String(req.params.name);
    authorizeUser(identity, name, deps.accessScopes, 'read');
    const params = await deps.launches.launch(identity, name, parseApiId(req.params.id));
    // LaunchService shapes the answer (LaunchParams).
    res.set('Cache-Control', 'no-store').json(params);
  });
}
