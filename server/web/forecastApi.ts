/** Forecasts in the JSON API: admins judge a system's images against a planned hub version or rules, and publish the result. */
import type { Router } from 'express';
import type { ForecastService } from '../inventory/forecastService.js';
import { identityOf } from './apiAuth.js';
import { badRequest } from '../errors.js';
import { SLUG } from '../systems/schema.js';
import { parseApiId } from './params.js';
import { presentForecast } from './forecastPresenters.js';

function parseApiSlug(raw: unknown): string {
  if (typeof raw !== 'string' || !SLUG.test(raw)) throw badRequest('slug', 'The system in the URL is not a valid slug');
  return raw;
}

export function forecastApiRoutes(router: Router, deps: { forecasts: ForecastService }): void {
  const { forecasts } = deps;
  router.post('/systems/:slug/forecasts', async (req, res) => {
    res.status(201).json(presentForecast(await forecasts.create(identityOf(req), parseApiSlug(req.params.slug), req.body)));
  });
  router.get('/forecasts/:id', async (req, res) => {
    res.json(presentForecast(await forecasts.get(identityOf(req), parseApiId(req.params.id))));
  });
  router.post('/forecasts/:id/publish', async (req, res) => {
    res.json(presentForecast(await forecasts.publish(identityOf(req), parseApiId(req.params.id))));
  });
}
