/** An image's package inventory in the JSON API; the service decides who may read it (as the image). */
import type { Router } from 'express';
import type { InventoryService } from '../inventory/service.js';
import { identityOf } from './apiAuth.js';
import { parseApiId, parseUserName } from './params.js';
import { presentPackages } from './inventoryPresenters.js';

export function inventoryApiRoutes(router: Router, deps: { inventories: InventoryService }): void {
  router.get('/users/:name/images/:id/packages', async (req, res) => {
    res.json(presentPackages(await deps.inventories.forImage(identityOf(req), parseUserName(req.params.name), parseApiId(req.params.id))));
  });
}
