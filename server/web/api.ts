/** The JSON API, v1, under {prefix}api/v1/. Every response passes a zod schema. */
import { Router } from 'express';
import type { z } from 'zod';
import type { TokenAuthenticator } from '../hub/tokenAuth.js';
import { HubIdentitySchema } from '../hub/identity.js';
import { identityOf, requireToken } from './apiAuth.js';

/** `GET api/v1/me`: who the token belongs to, as the service sees it. */
export const MeResponseSchema = HubIdentitySchema.pick({ kind: true, name: true, admin: true, groups: true, scopes: true });
export type MeResponse = z.infer<typeof MeResponseSchema>;

export function apiRouter(deps: { authenticate: TokenAuthenticator }): Router {
  const router = Router();
  router.use(requireToken(deps.authenticate));
  router.get('/me', (req, res) => {
    res.json(MeResponseSchema.parse(identityOf(req)));
  });
  return router;
}
