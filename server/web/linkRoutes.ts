/**
 * Launch links (links/): the plan page (`open?repo=…` and the short forms
 * `open/gh/ORG/REPO/REF`: GET shows, POST with the form's CSRF token acts),
 * the progress page (`opening`), the badge, and the API for scripts
 * (`GET api/v1/open?…` plans, `POST api/v1/open` acts,
 * `GET api/v1/open/state` follows). Routes parse, call and present; the
 * service decides.
 */
import { Router, type Request, type Response } from 'express';
import type { HubIdentity } from '../hub/identity.js';
import { parseLink, parseShortLink, type LaunchLink, type LinkFields, type LinkHosts } from '../links/link.js';
import type { LinkService } from '../links/service.js';
import { notFound } from '../errors.js';
import { identityOf } from './apiAuth.js';
import { loggedInUser } from './auth.js';
import { BADGE_SVG, presentLaunch, presentPlan, STEP_LABELS } from './presenters/links.js';

export interface LinkRouteDeps {
  links: LinkService;
  hosts: LinkHosts;
  trustedGitHost: (host: string) => boolean;
  prefix: string;
}

/** The link of a request: the query form on `open`, the short form on `open/<prefix>/…`. */
function linkOf(req: Request, deps: LinkRouteDeps, fields: LinkFields): LaunchLink {
  const rest = (req.params as { rest?: string[] }).rest;
  if (rest && rest.length > 0) return parseShortLink(rest.join('/'), fields, deps.hosts, deps.trustedGitHost);
  return parseLink(fields, deps.trustedGitHost);
}

/** A form's checkbox or a JSON boolean. */
function flag(value: unknown): boolean {
  return value === true || value === 'true' || value === 'on' || value === '1';
}

/** Adds `open` and `open/state` to the API router (behind its token check). */
export function linkApiRoutes(router: Router, deps: LinkRouteDeps): void {
  router.get('/open/state', async (req, res) => {
    const launch = await deps.links.current(identityOf(req));
    if (!launch) throw notFound('Launch');
    res.json(presentLaunch(launch));
  });
  router.get(['/open', '/open/*rest'], async (req, res) => {
    const link = linkOf(req, deps, req.query as LinkFields);
    res.json(presentPlan(await deps.links.plan(identityOf(req), link)));
  });
  router.post(['/open', '/open/*rest'], async (req, res) => {
    const body = (req.body ?? {}) as LinkFields & { stopRunning?: unknown };
    const fields = { ...(req.query as LinkFields), ...body };
    const launch = await deps.links.open(identityOf(req), linkOf(req, deps, fields), { stopRunning: flag(body.stopRunning) });
    res.status(202).json(presentLaunch(launch));
  });
}

/** The badge a README shows: public, like the static files. */
export function badgeRouter(): Router {
  const router = Router();
  router.get('/badge.svg', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=86400').type('image/svg+xml').send(BADGE_SVG);
  });
  return router;
}

/** The plan and progress pages, for a logged-in visitor (requireLogin sends others through the hub's login, query kept). */
export function linkPagesRouter(deps: LinkRouteDeps): Router {
  const router = Router();
  const renderPlan = async (req: Request, res: Response, user: HubIdentity) => {
    const link = linkOf(req, deps, req.query as LinkFields);
    const plan = await deps.links.plan(user, link);
    res.render('pages/open', {
      title: `Open ${plan.link.repo}`,
      plan,
      shortCommit: plan.commit.slice(0, 12),
      running: plan.server !== 'none',
      csrfToken: req.csrfToken?.(),
    });
  };
  router.get('/opening', async (req, res) => {
    const launch = await deps.links.current(loggedInUser(req));
    if (!launch) throw notFound('Launch');
    // Ready: on to the server (a GET that only follows what the visitor asked for with POST).
    if (launch.step === 'ready') return res.redirect(303, launch.landing);
    const active = launch.step !== 'failed';
    res.render('pages/opening', {
      title: `Opening ${launch.repo}`,
      launch,
      stepLabel: STEP_LABELS[launch.step],
      active,
      building: launch.step === 'building' && launch.buildNumber !== null,
      refreshSeconds: active ? 3 : undefined,
    });
  });
  router.get('/opening.json', async (req, res) => {
    const launch = await deps.links.current(loggedInUser(req));
    if (!launch) throw notFound('Launch');
    res.json(presentLaunch(launch));
  });
  router.get(['/open', '/open/*rest'], (req, res) => renderPlan(req, res, loggedInUser(req)));
  router.post(['/open', '/open/*rest'], async (req, res) => {
    const body = (req.body ?? {}) as LinkFields & { stopRunning?: unknown };
    await deps.links.open(loggedInUser(req), linkOf(req, deps, body), { stopRunning: flag(body.stopRunning) });
    res.redirect(303, `${deps.prefix}opening`);
  });
  return router;
}
