/**
 * Revisions in the JSON API: the list, one revision, a rollback, exports,
 * a moved tag's changes (accept, keep, look again) and the diff of two images.
 * The revision service decides who may do what; routes parse, call and present.
 */
import type { Router } from 'express';
import { z } from 'zod';
import { inputError } from '../forms.js';
import { parseRevision } from '../revisions/schema.js';
import { EXPORT_FORMATS, type ExportFormat, type RevisionService } from '../revisions/service.js';
import { identityOf } from './apiAuth.js';
import { parseApiId, parseUserName } from './params.js';
import { presentCheck } from './presenters/checks.js';
import { presentChanges, presentDiff, presentRevision, presentRevisionList } from './revisionPresenters.js';
import { notFound } from '../errors.js';

const ID = z
  .string({ message: 'an image id' })
  .regex(/^[1-9][0-9]{0,9}$/, 'an image id: a positive whole number')
  .transform(Number);

/** `?from=ID&to=ID` with optional `fromRevision` and `toRevision`: unknown keys and malformed values are refused. */
const DiffQuerySchema = z
  .object({
    from: ID,
    to: ID,
    fromRevision: z.string().optional(),
    toRevision: z.string().optional(),
  })
  .strict();

/** The sides of a diff from a query (the API's and the page's), or 400 naming the parameter. */
export function parseDiffQuery(raw: unknown) {
  const parsed = DiffQuerySchema.safeParse(raw);
  if (!parsed.success) throw inputError(parsed.error, 'query');
  const { from, to, fromRevision, toRevision } = parsed.data;
  return {
    from: { imageId: from, revision: parseRevision(fromRevision, 'fromRevision') },
    to: { imageId: to, revision: parseRevision(toRevision, 'toRevision') },
  };
}

/** A revision number in a route, or 400 naming it. */
function revisionParam(raw: unknown): number {
  const number = parseRevision(raw);
  if (number === undefined) throw notFound('Revision');
  return number;
}

/** Adds the revision routes to the API router (behind its token check). */
export function revisionApiRoutes(router: Router, deps: { revisions: RevisionService }): void {
  const { revisions } = deps;
  const image = (params: Record<string, string | undefined>) => ({ owner: parseUserName(params.name), id: parseApiId(params.id) });

  router.get('/users/:name/revisions', async (req, res) => {
    const lists = await revisions.listAll(identityOf(req), parseUserName(req.params.name));
    res.json(lists.map(presentRevisionList));
  });
  router.get('/users/:name/images/:id/revisions', async (req, res) => {
    const { owner, id } = image(req.params);
    res.json(presentRevisionList(await revisions.list(identityOf(req), owner, id)));
  });
  router.get('/users/:name/images/:id/revisions/:number', async (req, res) => {
    const { owner, id } = image(req.params);
    res.json(presentRevision((await revisions.get(identityOf(req), owner, id, revisionParam(req.params.number))).revision));
  });
  router.post('/users/:name/images/:id/revisions/:number/rollback', async (req, res) => {
    const { owner, id } = image(req.params);
    const { revision, check } = await revisions.rollback(identityOf(req), owner, id, revisionParam(req.params.number));
    res.status(202).json({ revision: revision.number, check: check ? presentCheck(check) : null });
  });
  for (const format of EXPORT_FORMATS) {
    router.get(`/users/:name/images/:id/revisions/:number/${format}`, async (req, res) => {
      const { owner, id } = image(req.params);
      const file = await revisions.exportRevision(identityOf(req), owner, id, revisionParam(req.params.number), format as ExportFormat);
      res.type(file.contentType).set('Content-Disposition', `attachment; filename="${file.filename}"`).send(file.body);
    });
  }
  router.get('/users/:name/images/:id/changes', async (req, res) => {
    const { owner, id } = image(req.params);
    res.json(presentChanges(await revisions.changes(identityOf(req), owner, id)));
  });
  router.post('/users/:name/images/:id/changes/accept', async (req, res) => {
    const { owner, id } = image(req.params);
    const accepted = await revisions.accept(identityOf(req), owner, id, req.body);
    res.json({ revision: accepted.number });
  });
  router.post('/users/:name/images/:id/changes/keep', async (req, res) => {
    const { owner, id } = image(req.params);
    const { revision, check } = await revisions.keep(identityOf(req), owner, id);
    res.status(202).json({ revision: revision.number, check: presentCheck(check) });
  });
  router.post('/users/:name/images/:id/changes/look', async (req, res) => {
    const { owner, id } = image(req.params);
    res.status(202).json(presentCheck(await revisions.lookForNew(identityOf(req), owner, id)));
  });
  router.get('/users/:name/diff', async (req, res) => {
    const user = parseUserName(req.params.name);
    const { from, to } = parseDiffQuery(req.query);
    res.json(presentDiff(await revisions.diff(identityOf(req), user, from, to)));
  });
}
