/**
 * The researcher's pages: "My images" tiles, the new/edit form and delete.
 * Server-rendered; every POST carries a CSRF token tied to the session.
 */
import { Router, type Request, type Response } from 'express';
import { AppError, notFound } from '../errors.js';
import type { CheckService } from '../checks/service.js';
import type { CheckRow } from '../checks/store.js';
import { isActive } from '../checks/status.js';
import type { ImageService, ImageView } from '../images/service.js';
import type { SharingService } from '../sharing/service.js';
import type { System } from '../systems/schema.js';
import { loggedInUser } from './auth.js';
import { parseId } from './params.js';
import { jobEvents } from './sse.js';
import type { BuildService } from '../builds/service.js';
import { presentBuildPage } from './presenters/builds.js';
import { presentCheckPage } from './presenters/checks.js';
import { presentTile } from './presenters/images.js';
import type { RevisionService, RevisionSummary } from '../revisions/service.js';
import type { InventoryService } from '../inventory/service.js';
import { inventoryTable, tableQuery } from './inventoryPresenters.js';
import type { ForecastService } from '../inventory/forecastService.js';
import { presentForecastNote } from './forecastPresenters.js';
import type { StorageService } from '../storage/service.js';
import { presentQuotaPage } from './presenters/storage.js';

/** Values to show back in the form: everything the user typed except the password. */
function formValues(body: Record<string, unknown>) {
  const text = (key: string) => (typeof body[key] === 'string' ? (body[key] as string) : '');
  return {
    name: text('name'),
    description: text('description'),
    system: text('system'),
    image: text('image'),
    registry: text('registry'),
    username: text('username'),
    mountPath: text('mountPath'),
    removeCredentials: body.removeCredentials === 'on',
  };
}

function valuesOf(image: ImageView) {
  return {
    name: image.name,
    description: image.description,
    system: image.system.slug,
    image: image.referenceInput,
    registry: image.credential?.registry ?? (image.registry === 'docker.io' ? '' : image.registry),
    username: image.credential?.username ?? '',
    mountPath: image.mountPathIsDefault ? '' : image.mountPath,
    removeCredentials: false,
  };
}

function systemOptions(systems: System[], selected: string) {
  return systems.map((s) => ({ ...s, selected: s.slug === selected }));
}

export function imagePagesRouter(deps: {
  images: ImageService;
  checks: CheckService;
  sharing: SharingService;
  builds: Pick<BuildService, 'latestFor'>;
  inventories: Pick<InventoryService, 'forCheck' | 'summaries'>;
  forecasts: Pick<ForecastService, 'notesFor'>;
  prefix: string;
  draining: AbortSignal;
  /** Use against quotas, shown above the tiles (storage/). */
  storage?: Pick<StorageService, 'quotasOf'>;
  /** What each tile says of its revisions; without it, tiles say nothing of them. */
  revisions?: Pick<RevisionService, 'summaries'>;
}): Router {
  const { images, checks, sharing, builds, inventories, forecasts, prefix, draining } = deps;
  const router = Router();
  const owner = loggedInUser;

  async function renderForm(
    req: Request,
    res: Response,
    options: { image?: ImageView; values: ReturnType<typeof formValues>; errors?: Record<string, string>; status?: number },
  ) {
    const systems = await images.listSystems(options.image?.system.slug);
    const selected = options.values.system || systems[0]?.slug || '';
    const system = systems.find((s) => s.slug === selected);
    res.status(options.status ?? 200).render('pages/image-form', {
      title: options.image ? `Edit ${options.image.name}` : 'New custom image',
      image: options.image,
      action: options.image ? `${prefix}images/${options.image.id}` : `${prefix}images`,
      values: options.values,
      errors: options.errors ?? {},
      hasErrors: Object.keys(options.errors ?? {}).length > 0,
      systems: systemOptions(systems, selected),
      singleSystem: systems.length === 1 ? systems[0] : undefined,
      defaultMountPath: system?.defaultMountPath ?? '',
      mountPrefixes: system?.mountPrefixes.join(', ') ?? '',
      csrfToken: req.csrfToken?.(),
    });
  }

  /** Saves, or shows the form again with the messages next to their fields. */
  async function save(req: Request, res: Response, id: number | undefined) {
    const user = owner(req);
    const body = (req.body ?? {}) as Record<string, unknown>;
    try {
      const saved = id === undefined ? await images.create(user, user.name, body) : await images.update(user, user.name, id, body);
      res.redirect(303, `${prefix}?saved=${saved.id}`);
    } catch (err) {
      const isInputProblem = err instanceof AppError && Object.keys(err.fields).length > 0;
      if (!isInputProblem) throw err;
      const image = id === undefined ? undefined : await images.get(user, user.name, id);
      await renderForm(req, res, { image, values: formValues(body), errors: err.fields, status: err.status });
    }
  }

  /** My images with whom each is shared, and what others share with me; `problem` next to the form it is about. */
  async function renderHome(req: Request, res: Response, problem?: { imageId: number; message: string; status: number; groups?: string }) {
    const user = owner(req);
    const [own, shares] = await Promise.all([images.list(user, user.name), sharing.sharesOfAll(user, user.name)]);
    const ids = own.map((i) => i.id);
    const [built, summaries, forecastNotes] = await Promise.all([
      builds.latestFor(user.name, ids),
      inventories.summaries(user.name, ids),
      forecasts.notesFor(
        user.name,
        own.map((i) => ({ id: i.id, system: i.system.slug })),
      ),
    ]);
    const revisions = (await deps.revisions?.summaries(user.name, own)) ?? new Map<number, RevisionSummary>();
    const list = await Promise.all(
      own.map(async (image) => {
        const build = built.get(image.id);
        return {
          ...presentTile(image, build && presentBuildPage(build)),
          inventorySummary: summaries.get(image.id),
          revision: revisions.get(image.id),
          forecast: forecastNotes.has(image.id) ? presentForecastNote(forecastNotes.get(image.id)!) : undefined,
          shares: shares.get(image.id),
          shareProblem: problem?.imageId === image.id ? problem.message : undefined,
          // What the user typed stays in the field when it was refused.
          shareInput: problem?.imageId === image.id ? problem.groups : undefined,
        };
      }),
    );
    const saved = list.find((i) => String(i.id) === req.query.saved);
    const quotas = (
      (await deps.storage?.quotasOf(
        user,
        user.name,
        own.map((i) => i.system.slug),
      )) ?? []
    ).map(presentQuotaPage);
    res.status(problem?.status ?? 200).render('pages/images', {
      quotas,
      quotaFull: quotas.some((q) => q.images.full || q.builds.full || q.registry.full),
      title: 'My custom images',
      images: list,
      shared: await sharing.sharedWith(user, user.name),
      hubGroups: await sharing.groupChoices(),
      // Without JavaScript the page reloads itself while a tile is checking or preparing.
      refreshSeconds: list.some((i) => i.busy) ? 3 : undefined,
      saved,
      deleted: req.query.deleted === '1',
      sharedNotice: list.find((i) => String(i.id) === req.query.shared),
      csrfToken: req.csrfToken?.(),
    });
  }

  /** Runs a sharing change from a tile's form; a refused input is shown next to that form. */
  async function shareAction(req: Request, res: Response, change: (id: number) => Promise<unknown>) {
    const id = parseId(req.params.id);
    try {
      await change(id);
      res.redirect(303, `${prefix}?shared=${id}`);
    } catch (err) {
      if (!(err instanceof AppError) || err.status >= 500 || err.status === 404) throw err;
      const typed = (req.body as { groups?: unknown } | undefined)?.groups;
      await renderHome(req, res, {
        imageId: id,
        message: err.message,
        status: err.status,
        groups: typeof typed === 'string' ? typed : undefined,
      });
    }
  }

  router.get('/', (req, res) => renderHome(req, res));
  router.post('/images/:id/share', (req, res) => {
    const user = owner(req);
    return shareAction(req, res, (id) => sharing.share(user, user.name, id, req.body));
  });
  router.post('/images/:id/publish', (req, res) => {
    const user = owner(req);
    return shareAction(req, res, (id) => sharing.publish(user, user.name, id, req.body));
  });
  router.post('/images/:id/unpublish', (req, res) => {
    const user = owner(req);
    return shareAction(req, res, (id) => sharing.unpublish(user, user.name, id));
  });
  router.post('/copies', async (req, res) => {
    const user = owner(req);
    const copy = await sharing.copy(user, user.name, req.body);
    res.redirect(303, `${prefix}?saved=${copy.id}`);
  });

  router.get('/images/new', async (req, res) => {
    await renderForm(req, res, { values: formValues({}) });
  });
  router.post('/images', (req, res) => save(req, res, undefined));

  router.get('/images/:id/edit', async (req, res) => {
    const user = owner(req);
    const image = await images.get(user, user.name, parseId(req.params.id));
    await renderForm(req, res, { image, values: valuesOf(image) });
  });
  router.post('/images/:id', (req, res) => save(req, res, parseId(req.params.id)));

  router.post('/images/:id/check', async (req, res) => {
    const user = owner(req);
    const id = parseId(req.params.id);
    const check = await checks.request(user, user.name, id);
    res.redirect(303, `${prefix}images/${id}/checks/${check.id}`);
  });
  router.get('/images/:id/checks/:checkId', async (req, res) => {
    const user = owner(req);
    const image = await images.get(user, user.name, parseId(req.params.id));
    const check = await checks.get(user, parseId(req.params.checkId, 'Check'));
    if (check.imageId !== image.id) throw notFound('Check');
    const history = await checks.history(user, user.name, image.id);
    const inventory = await inventories.forCheck(check);
    res.render('pages/check', {
      title: `Check of ${image.name}`,
      refreshSeconds: isActive(check.status) ? 2 : undefined,
      image,
      check: presentCheckPage(check),
      history: history.map(presentCheckPage),
      inventory: inventory ? inventoryTable(inventory, tableQuery(req.query.q)) : undefined,
      csrfToken: req.csrfToken?.(),
    });
  });

  // Server-Sent Events: the job's progress until it ends (any replica can serve it).
  router.get(
    '/images/:id/checks/:checkId/events',
    jobEvents<CheckRow>({
      draining,
      jobParam: 'checkId',
      jobName: 'Check',
      follow: checks.follow.bind(checks),
      present: (check) => ({
        event: { status: check.status, progress: check.progress, log: check.log },
        ended: isActive(check.status) ? undefined : { status: check.status },
      }),
    }),
  );

  router.get('/images/:id/delete', async (req, res) => {
    const user = owner(req);
    const image = await images.get(user, user.name, parseId(req.params.id));
    res.render('pages/image-delete', { title: `Delete ${image.name}`, image, csrfToken: req.csrfToken?.() });
  });
  router.post('/images/:id/delete', async (req, res) => {
    const user = owner(req);
    await images.remove(user, user.name, parseId(req.params.id));
    res.redirect(303, `${prefix}?deleted=1`);
  });
  return router;
}
