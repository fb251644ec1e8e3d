/**
 * Image configurations and their checks in the JSON API: the same schema and
 * services as the form. The services decide who may do what; routes parse,
 * call and present.
 */
import type { Router } from 'express';
import type { CheckService } from '../checks/service.js';
import type { ImageService } from '../images/service.js';
import { identityOf } from './apiAuth.js';
import { parseApiId, parseListQuery, parseUserName } from './params.js';
import { presentCheck } from './presenters/checks.js';
import { presentImage } from './presenters/images.js';

/** Adds the image and check routes to the API router (behind its token check). */
export function imageApiRoutes(router: Router, deps: { images: ImageService; checks: CheckService }): void {
  const { images, checks } = deps;

  router.get('/users/:name/images', async (req, res) => {
    const name = parseUserName(req.params.name);
    const query = parseListQuery(req.query);
    res.json((await images.list(identityOf(req), name)).filter(query.keep).map(presentImage));
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
