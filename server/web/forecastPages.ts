/**
 * The admin's forecast pages: choose a system and a planned hub version or
 * rules, see which images would fail or warn and why, publish it to the
 * owners. The service lets admins in; anyone else gets 403.
 */
import { Router, type Request, type Response } from 'express';
import { AppError } from '../errors.js';
import type { ForecastService } from '../inventory/forecastService.js';
import type { SystemService } from '../systems/service.js';
import { loggedInUser } from './auth.js';
import { parseId } from './params.js';
import { presentForecast } from './forecastPresenters.js';

export function forecastPagesRouter(deps: { forecasts: ForecastService; systems: SystemService; prefix: string }): Router {
  const { forecasts, systems, prefix } = deps;
  const router = Router();
  const actor = loggedInUser;

  async function renderForm(
    req: Request,
    res: Response,
    values: Record<string, unknown>,
    errors: Record<string, string> = {},
    status = 200,
  ) {
    // The forecast service refuses anyone but admins, first; they see every system (the configured default while none is defined).
    const recent = (await forecasts.recent(actor(req))).map(presentForecast);
    const all = await systems.listFor(actor(req));
    const slug = typeof values.system === 'string' && values.system ? values.system : all[0]?.slug;
    const system = all.find((s) => s.slug === slug);
    const current = system?.policy;
    res.status(status).render('pages/admin-forecast', {
      title: 'Forecast',
      systems: all.map((s) => ({ slug: s.slug, displayName: s.displayName, selected: s.slug === slug })),
      values: {
        hubVersion: values.hubVersion ?? '',
        pythonMin: values.pythonMin ?? current?.python.min ?? '',
        pythonMax: values.pythonMax ?? current?.python.max ?? '',
        requirePip: values.requirePip !== undefined ? values.requirePip === 'on' : (current?.requirePip ?? false),
        requireUser: values.requireUser !== undefined ? values.requireUser === 'on' : (current?.requireUser ?? false),
      },
      errors,
      recent,
      csrfToken: req.csrfToken?.(),
    });
  }

  router.get('/admin/forecasts', (req, res) => renderForm(req, res, { system: req.query.system }));
  router.post('/admin/forecasts', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    try {
      const forecast = await forecasts.create(actor(req), typeof body.system === 'string' ? body.system : '', { ...body, fromForm: '1' });
      res.redirect(303, `${prefix}admin/forecasts/${forecast.id}`);
    } catch (err) {
      if (!(err instanceof AppError) || Object.keys(err.fields).length === 0) throw err;
      await renderForm(req, res, body, err.fields, err.status);
    }
  });
  router.get('/admin/forecasts/:id', async (req, res) => {
    const forecast = presentForecast(await forecasts.get(actor(req), parseId(req.params.id, 'Forecast')));
    res.render('pages/admin-forecast-result', { title: `Forecast for ${forecast.system}`, forecast, csrfToken: req.csrfToken?.() });
  });
  router.post('/admin/forecasts/:id/publish', async (req, res) => {
    const forecast = await forecasts.publish(actor(req), parseId(req.params.id, 'Forecast'));
    res.redirect(303, `${prefix}admin/forecasts/${forecast.id}`);
  });
  return router;
}
