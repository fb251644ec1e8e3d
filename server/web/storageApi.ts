/**
 * Storage in the JSON API: a user's use against their quotas and their data
 * (with the request that it go); for admins, storage per user and system,
 * the clean-up's runs, its dry run, keeping a volume, and each system's
 * quotas and retention. The services decide who may; routes parse, call and present.
 */
import type { Router } from 'express';
import type { StorageService } from '../storage/service.js';
import type { SystemService } from '../systems/service.js';
import { identityOf } from './apiAuth.js';
import { parseApiId, parseSlug, parseUserName } from './params.js';
import { notFound } from '../errors.js';
import {
  presentDataRemoval,
  presentDryRun,
  presentQuota,
  presentRun,
  presentStorage,
  presentStorageSettings,
  presentVolume,
} from './presenters/storage.js';

/** A system's slug in an API path: 404 for one that cannot exist, as for one that does not. */
function slugOf(raw: unknown): string {
  try {
    return parseSlug(raw);
  } catch {
    throw notFound('System');
  }
}

export function storageApiRoutes(router: Router, deps: { storage: StorageService; systems: SystemService }): void {
  const { storage, systems } = deps;

  router.get('/users/:name/quota', async (req, res) => {
    res.json((await storage.quotasOf(identityOf(req), parseUserName(req.params.name))).map(presentQuota));
  });
  router.get('/users/:name/data', async (req, res) => {
    res.json(presentDataRemoval(await storage.dataRemoval(identityOf(req), parseUserName(req.params.name))));
  });
  router.post('/users/:name/data/removal', async (req, res) => {
    res.status(202).json(presentDataRemoval(await storage.requestDataRemoval(identityOf(req), parseUserName(req.params.name))));
  });
  router.delete('/users/:name/data/removal', async (req, res) => {
    res.json(presentDataRemoval(await storage.withdrawDataRemoval(identityOf(req), parseUserName(req.params.name))));
  });

  router.get('/storage', async (req, res) => {
    res.json(presentStorage(await storage.overview(identityOf(req))));
  });
  router.get('/storage/dry-run', async (req, res) => {
    res.json(presentDryRun(await storage.dryRun(identityOf(req))));
  });
  router.post('/storage/cleanup', async (req, res) => {
    res.status(202).json((await storage.requestRun(identityOf(req))).map(presentRun));
  });
  router.get('/storage/cleanup/:id', async (req, res) => {
    res.json(presentRun(await storage.run(identityOf(req), parseApiId(req.params.id))));
  });
  router.put('/storage/volumes/:id/keep', async (req, res) => {
    await storage.keepVolume(identityOf(req), parseApiId(req.params.id), true);
    res.json(presentVolume(await storage.volumeItem(identityOf(req), parseApiId(req.params.id))));
  });
  router.delete('/storage/volumes/:id/keep', async (req, res) => {
    await storage.keepVolume(identityOf(req), parseApiId(req.params.id), false);
    res.json(presentVolume(await storage.volumeItem(identityOf(req), parseApiId(req.params.id))));
  });

  router.get('/systems/:slug/storage', async (req, res) => {
    res.json(presentStorageSettings((await systems.getForEdit(identityOf(req), slugOf(req.params.slug))).storage));
  });
  router.put('/systems/:slug/storage', async (req, res) => {
    res.json(presentStorageSettings(await systems.updateStorage(identityOf(req), slugOf(req.params.slug), req.body)));
  });
}
