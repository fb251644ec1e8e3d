/**
 * An image's history (issue #27): `GET api/v1/users/{name}/images/{id}/history`
 * and the page `images/{id}/history`, linked from the tile. The history
 * service decides who may (the owner, the launcher); routes parse, call and
 * present.
 */
import { Router } from 'express';
import type { ImageHistory } from '../images/history.js';
import type { ImageService } from '../images/service.js';
import { identityOf } from './apiAuth.js';
import { loggedInUser } from './auth.js';
import { parseApiId, parseId, parseUserName } from './params.js';
import { presentHistory, presentHistoryPage } from './presenters/history.js';

/** Adds the history route to the API router (behind its token check). */
export function historyApiRoutes(router: Router, deps: { history: ImageHistory }): void {
  router.get('/users/:name/images/:id/history', async (req, res) => {
    const id = parseApiId(req.params.id);
    res.json(presentHistory(id, await deps.history.of(identityOf(req), parseUserName(req.params.name), id)));
  });
}

/** The history page of one of the logged-in user's images. */
export function historyPagesRouter(deps: { history: ImageHistory; images: ImageService }): Router {
  const router = Router();
  router.get('/images/:id/history', async (req, res) => {
    const user = loggedInUser(req);
    const image = await deps.images.get(user, user.name, parseId(req.params.id));
    const entries = await deps.history.of(user, user.name, image.id);
    res.render('pages/history', { title: `History of ${image.name}`, image, entries: presentHistoryPage(entries) });
  });
  return router;
}
