/**
 * Revisions on the researcher's pages: an image's revisions (roll back,
 * compare, export, build from one), a moved tag's changes (accept, keep,
 * look again) and the diff of two images. Server-rendered; every POST
 * carries the session's CSRF token. The revision service decides who may.
 */
import { Router } from 'express';
import { isActive } from '../checks/status.js';
import type { ImageService } from '../images/service.js';
import { parseReference } from '../registry/reference.js';
import { launchDigest, REASON_TEXT } from '../revisions/schema.js';
import { EXPORT_FORMATS, type ExportFormat, type RevisionService } from '../revisions/service.js';
import type { SharingService } from '../sharing/service.js';
import { loggedInUser } from './auth.js';
import { parseId } from './params.js';
import { parseDiffQuery } from './revisionApi.js';
import { presentDiffPage, shortDigest } from './revisionPresenters.js';

export function revisionPagesRouter(deps: {
  revisions: RevisionService;
  images: ImageService;
  sharing: Pick<SharingService, 'sharedWith'>;
  prefix: string;
}): Router {
  const { revisions, images, sharing, prefix } = deps;
  const router = Router();
  const owner = loggedInUser;
  const number = (raw: unknown) => parseId(raw, 'Revision');

  router.get('/images/:id/revisions', async (req, res) => {
    const user = owner(req);
    const list = await revisions.list(user, user.name, parseId(req.params.id));
    const [own, shared] = await Promise.all([images.list(user, user.name), sharing.sharedWith(user, user.name)]);
    const others = [
      ...own.filter((i) => i.id !== list.image.id).map((i) => ({ id: i.id, label: `${i.name} (yours)` })),
      ...shared.map((i) => ({ id: i.id, label: `${i.name} (${i.owner}'s, ${i.access})` })),
    ];
    const reference = parseReference(list.image.reference);
    const newest = list.revisions[0]?.number;
    res.render('pages/revisions', {
      title: `Revisions of ${list.image.name}`,
      list,
      revisions: list.revisions.map((r) => ({
        ...r,
        reasonText: REASON_TEXT[r.reason],
        launchDigest: launchDigest(r),
        short: shortDigest(launchDigest(r)),
      })),
      newest,
      // A number only: the page says it in its own words, never a query's text.
      rolledBack:
        typeof req.query.rolledBack === 'string' && /^[1-9][0-9]{0,9}$/.test(req.query.rolledBack) ? req.query.rolledBack : undefined,
      others,
      tagged: reference.tag ? `${reference.registry}/${reference.repository}:${reference.tag}` : undefined,
      csrfToken: req.csrfToken?.(),
    });
  });
  router.post('/images/:id/revisions/:number/rollback', async (req, res) => {
    const user = owner(req);
    const id = parseId(req.params.id);
    const { revision } = await revisions.rollback(user, user.name, id, number(req.params.number));
    res.redirect(303, `${prefix}images/${id}/revisions?rolledBack=${revision.number}`);
  });
  for (const format of EXPORT_FORMATS) {
    router.get(`/images/:id/revisions/:number/${format}`, async (req, res) => {
      const user = owner(req);
      const file = await revisions.exportRevision(
        user,
        user.name,
        parseId(req.params.id),
        number(req.params.number),
        format as ExportFormat,
      );
      res.type(file.contentType).set('Content-Disposition', `attachment; filename="${file.filename}"`).send(file.body);
    });
  }

  router.get('/images/:id/changes', async (req, res) => {
    const user = owner(req);
    const view = await revisions.changes(user, user.name, parseId(req.params.id));
    const reading = view.list.candidate !== undefined && isActive(view.list.candidate.status);
    res.render('pages/changes', {
      title: `What changed in ${view.list.image.name}`,
      list: view.list,
      problem: view.problem,
      reading,
      refreshSeconds: reading ? 3 : undefined,
      diff: view.diff ? presentDiffPage(view.diff) : undefined,
      csrfToken: req.csrfToken?.(),
    });
  });
  router.post('/images/:id/changes/accept', async (req, res) => {
    const user = owner(req);
    const id = parseId(req.params.id);
    await revisions.accept(user, user.name, id, req.body);
    res.redirect(303, `${prefix}images/${id}/revisions`);
  });
  router.post('/images/:id/changes/keep', async (req, res) => {
    const user = owner(req);
    const id = parseId(req.params.id);
    await revisions.keep(user, user.name, id);
    res.redirect(303, `${prefix}images/${id}/revisions`);
  });
  router.post('/images/:id/changes/look', async (req, res) => {
    const user = owner(req);
    const id = parseId(req.params.id);
    await revisions.lookForNew(user, user.name, id);
    res.redirect(303, `${prefix}images/${id}/changes`);
  });

  router.get('/diff', async (req, res) => {
    const user = owner(req);
    const { from, to } = parseDiffQuery(req.query);
    const view = await revisions.diff(user, user.name, from, to);
    res.render('pages/diff', {
      title: `${view.from.name} and ${view.to.name}: what changed`,
      from: { ...view.from, short: shortDigest(view.from.digest) },
      to: { ...view.to, short: shortDigest(view.to.digest) },
      diff: presentDiffPage(view.diff),
    });
  });
  return router;
}
