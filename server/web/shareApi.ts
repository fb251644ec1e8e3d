/**
 * Sharing in the JSON API: share and unshare with hub groups (the owner),
 * publish and unpublish (hub admins), what is shared with me, and copying a
 * shared image into my own. The sharing service decides who may; routes
 * parse, call and present.
 */
import type { Router } from 'express';
import type { SharingService } from '../sharing/service.js';
import { identityOf } from './apiAuth.js';
import { parseApiId, parseListQuery, parseUserName } from './params.js';
import { presentImage } from './presenters/images.js';
import { presentPublished, presentShared, presentShares } from './presenters/sharing.js';

export function shareApiRoutes(router: Router, deps: { sharing: SharingService }): void {
  const { sharing } = deps;
  const image = (req: { params: Record<string, string> }) =>
    [parseUserName(req.params.name ?? ''), parseApiId(req.params.id ?? '')] as const;

  router.get('/users/:name/shared', async (req, res) => {
    const name = parseUserName(req.params.name);
    const query = parseListQuery(req.query);
    res.json((await sharing.sharedWith(identityOf(req), name)).filter(query.keep).map(presentShared));
  });
  router.post('/users/:name/copies', async (req, res) => {
    res.status(201).json(presentImage(await sharing.copy(identityOf(req), parseUserName(req.params.name), req.body)));
  });
  router.get('/users/:name/images/:id/shares', async (req, res) => {
    res.json(presentShares(await sharing.sharesOf(identityOf(req), ...image(req))));
  });
  router.put('/users/:name/images/:id/shares', async (req, res) => {
    res.json(presentShares(await sharing.share(identityOf(req), ...image(req), req.body)));
  });
  router.delete('/users/:name/images/:id/shares/:group', async (req, res) => {
    res.json(presentShares(await sharing.unshare(identityOf(req), ...image(req), req.params.group)));
  });
  router.put('/users/:name/images/:id/publish', async (req, res) => {
    res.json(presentShares(await sharing.publish(identityOf(req), ...image(req), req.body)));
  });
  router.delete('/users/:name/images/:id/publish', async (req, res) => {
    await sharing.unpublish(identityOf(req), ...image(req));
    res.status(204).end();
  });
  router.get('/publications', async (req, res) => {
    res.json((await sharing.publications(identityOf(req))).map(presentPublished));
  });
}
