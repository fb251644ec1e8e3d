/**
 * Image configurations and their checks in the JSON API: the same schema and
 * services as the form. The services decide who may do what; routes parse,
 * call and present.
 */
import type { Router } from 'express';
import { z } from 'zod';
import type { CheckService } from '../checks/service.js';
import { invalidInput } from '../errors.js';
import type { ImageService } from '../images/service.js';
import { IMAGE_STATUSES } from '../images/status.js';
import { SLUG, SLUG_RULE } from '../systems/schema.js';
import { identityOf } from './apiAuth.js';
import { parseApiId, parseUserName } from './params.js';
import { presentCheck, presentImage } from './presenters.js';

/** `?system=SLUG&status=passed`: unknown keys and malformed values are refused. */
const ListQuerySchema = z
  .object({
    system: z.string().regex(SLUG, `a system slug: ${SLUG_RULE}`).optional(),
    status: z.enum(IMAGE_STATUSES, { message: `one of ${IMAGE_STATUSES.join(', ')}` }).optional(),
  })
  .strict();

/** Adds the image and check routes to the API router (behind its token check). */
export function imageApiRoutes(router: Router, deps: { images: ImageService; checks: CheckService }): void {
  const { images, checks } = deps;

  router.get('/users/:name/images', async (req, res) => {
    const name = parseUserName(req.params.name);
    const query = ListQuerySchema.safeParse(req.query);
    if (!query.success)
      throw invalidInput(Object.fromEntries(query.error.issues.map((issue) => [String(issue.path[0] ?? 'query'), issue.message])));
    const list = await images.list(identityOf(req), name);
    const { system, status } = query.data;
    res.json(list.filter((i) => (!system || i.system.slug === system) && (!status || i.status.code === status)).map(presentImage));
  });
  router.post('/users/:name/images', async (req, res) => {
    res.status(201).json(presentImage(await images.create(identityOf(req), parseUserName(req.params.name), req.body)));
  });
  router.get('/users/:name/images/:id', async (req, res) => {
    res.json(presentImage(await images.get(identityOf(req), parseUserName(req.params.name), parseApiId(req.params.id))));
  });
  router.put('/users/:name/images/:id', async (req, res) => {
    res.json(presentImage(await images.update(identityOf(req), parseUserName(req.params.name), parseApiId(req.params.id), req.body)));
  });
  router.post('/users/:name/images/:id/check', async (req, res) => {
    res.status(202).json(presentCheck(await checks.request(identityOf(req), parseUserName(req.params.name), parseApiId(req.params.id))));
  });
  router.get('/checks/:id', async (req, res) => {
    res.json(presentCheck(await checks.get(identityOf(req), parseApiId(req.params.id))));
  });
  router.delete('/users/:name/images/:id', async (req, res) => {
    await images.remove(identityOf(req), parseUserName(req.params.name), parseApiId(req.params.id));
    res.status(204).end();
  });
}
