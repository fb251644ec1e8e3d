/** /healthz for load balancers and /metrics for Prometheus. */
import { Router } from 'express';
import type { Knex } from 'knex';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { forbidden } from '../errors.js';
import { isServiceAdmin } from '../hub/identity.js';
import type { TokenAuthenticator } from '../hub/tokenAuth.js';
import { pingDatabase } from '../store/db.js';
import { identityOf, requireToken } from './apiAuth.js';

/** `/healthz`: the service answers and its database too. */
export const HealthResponseSchema = z.object({ status: z.literal('ok'), database: z.literal('ok') });

export function healthRouter(deps: { db: Knex; registry: Registry; authenticate: TokenAuthenticator }): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    await pingDatabase(deps.db);
    res.set('Cache-Control', 'no-store').json(HealthResponseSchema.parse({ status: 'ok', database: 'ok' }));
  });
  // Like JupyterHub's own /hub/metrics (authenticate_prometheus), metrics need
  // a token: a hub admin's or one with the service's admin scope.
  router.get('/metrics', requireToken(deps.authenticate), async (req, res) => {
    if (!isServiceAdmin(identityOf(req))) {
      throw forbidden('Metrics need a hub admin token or the custom:custom-images:admin scope.');
    }
    res.set('Content-Type', deps.registry.contentType).send(await deps.registry.metrics());
  });
  return router;
}
