/**
 * Storage pages: for admins, what the site keeps per system and user, the
 * clean-up's runs, its dry run and the data volumes nobody owns (keep one, or
 * run the clean-up now); for users, their data volumes and the request that
 * their images and data go. Server-rendered; every POST carries a CSRF token.
 */
import { Router, type Request } from 'express';
import type { StorageService } from '../storage/service.js';
import { loggedInUser } from './auth.js';
import { parseId } from './params.js';
import { presentDataRemoval, presentDryRun, presentStorage } from './presenters/storage.js';

export function storagePagesRouter(deps: { storage: StorageService; prefix: string }): Router {
  const { storage, prefix } = deps;
  const router = Router();
  const actor = loggedInUser;
  const csrf = (req: Request) => req.csrfToken?.();

  router.get('/admin/storage', async (req, res) => {
    const overview = presentStorage(await storage.overview(actor(req)));
    res.render('pages/admin-storage', {
      title: 'Storage',
      ...overview,
      orphans: overview.volumes.filter((v) => v.orphan !== null),
      // An engine's id is long: the page shows its start, the API all of it.
      recentRuns: overview.recentRuns.map((r) => ({ ...r, engine: r.engine ? `${r.engine.slice(0, 14)}…` : null })),
      owned: overview.volumes.filter((v) => v.orphan === null).length,
      queued: req.query.queued === '1',
      csrfToken: csrf(req),
    });
  });
  router.get('/admin/storage/dry-run', async (req, res) => {
    res.render('pages/admin-storage-dry-run', { title: 'Clean-up: dry run', ...presentDryRun(await storage.dryRun(actor(req))) });
  });
  router.post('/admin/storage/cleanup', async (req, res) => {
    await storage.requestRun(actor(req));
    res.redirect(303, `${prefix}admin/storage?queued=1`);
  });
  router.post('/admin/storage/volumes/:id/keep', async (req, res) => {
    await storage.keepVolume(actor(req), parseId(req.params.id, 'Volume'), true);
    res.redirect(303, `${prefix}admin/storage#volumes`);
  });
  router.post('/admin/storage/volumes/:id/unkeep', async (req, res) => {
    await storage.keepVolume(actor(req), parseId(req.params.id, 'Volume'), false);
    res.redirect(303, `${prefix}admin/storage#volumes`);
  });

  router.get('/data', async (req, res) => {
    const user = actor(req);
    res.render('pages/my-data', {
      title: 'My data',
      ...presentDataRemoval(await storage.dataRemoval(user, user.name)),
      done: req.query.done,
      csrfToken: csrf(req),
    });
  });
  router.post('/data/removal', async (req, res) => {
    const user = actor(req);
    await storage.requestDataRemoval(user, user.name);
    res.redirect(303, `${prefix}data?done=requested`);
  });
  router.post('/data/removal/withdraw', async (req, res) => {
    const user = actor(req);
    await storage.withdrawDataRemoval(user, user.name);
    res.redirect(303, `${prefix}data?done=withdrawn`);
  });
  return router;
}
