/**
 * Building in the JSON API: the systems that build, a new built image, its
 * builds, one build with its log, and a rebuild (no body: the same inputs).
 * The build service decides who may; routes parse, call and present.
 */
import type { Router } from 'express';
import type { BuildService } from '../builds/service.js';
import { identityOf } from './apiAuth.js';
import { parseApiId, parseUserName } from './params.js';
import { presentBuild, presentBuildCreated, presentBuildDetails, presentBuildSystem } from './presenters/builds.js';

export function buildApiRoutes(router: Router, deps: { builds: BuildService }): void {
  const { builds } = deps;
  const image = (req: { params: Record<string, string> }) =>
    [parseUserName(req.params.name ?? ''), parseApiId(req.params.id ?? '')] as const;

  router.get('/build-systems', async (req, res) => {
    res.json((await builds.systemsFor(identityOf(req))).map(presentBuildSystem));
  });
  router.post('/users/:name/builds', async (req, res) => {
    const created = await builds.create(identityOf(req), parseUserName(req.params.name), req.body, req.uploads ?? []);
    // A commit built already is answered at once (200); a queued build is accepted (202).
    res.status(created.reused ? 200 : 202).json(presentBuildCreated(created));
  });
  router.get('/users/:name/images/:id/builds', async (req, res) => {
    res.json((await builds.list(identityOf(req), ...image(req))).map(presentBuild));
  });
  router.post('/users/:name/images/:id/builds', async (req, res) => {
    const edited = req.body && Object.keys(req.body as object).length > 0 ? req.body : undefined;
    res.status(202).json(presentBuild(await builds.rebuild(identityOf(req), ...image(req), edited, req.uploads ?? [])));
  });
  router.get('/users/:name/images/:id/builds/:number', async (req, res) => {
    res.json(presentBuildDetails(await builds.get(identityOf(req), ...image(req), parseApiId(req.params.number))));
  });
}
