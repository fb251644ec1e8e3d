/**
 * Building on the researcher's pages: the build form (new, or edited for a
 * rebuild), a build's page with its live log, and Rebuild. The build
 * service decides who may; routes parse, call and render.
 */
import { Router, type Request, type Response } from 'express';
import { AppError } from '../errors.js';
import { inputsAsRequest, inputsAsTyped, type BuildInputs } from '../builds/inputs.js';
import type { BuildService, BuildView } from '../builds/service.js';
import { isBuildActive } from '../images/status.js';
import type { ImageService } from '../images/service.js';
import { loggedInUser } from './auth.js';
import type { HubIdentity } from '../hub/identity.js';
import { parseId } from './params.js';
import { jobEvents } from './sse.js';
import { presentBuildPage } from './presenters/builds.js';
import { presentShareLink } from './presenters/links.js';

/** The build form's fields: the image's name, system and mount path, and the build's inputs (builds/inputs.ts). */
type FormValues = Record<'name' | 'description' | 'system' | 'mountPath' | keyof BuildInputs, string>;

/** What the user typed, to show back (never the token). */
function formValues(body: Record<string, unknown>): FormValues {
  const typed = (field: string) => (typeof body[field] === 'string' ? body[field] : '');
  const values: FormValues = {
    name: typed('name'),
    description: typed('description'),
    system: typed('system'),
    mountPath: typed('mountPath'),
    ...inputsAsTyped(body),
  };
  values.mode ||= 'packages';
  return values;
}

/** A stored build's inputs in the form, for an edited rebuild; `mode` 'dockerfile' takes a written Dockerfile over. */
function inputsAsValues(
  inputs: BuildInputs,
  image: { name: string; description: string; system: string; mountPath: string },
  mode?: string,
): FormValues {
  return { ...image, ...inputsAsRequest(inputs, mode) };
}

export function buildPagesRouter(deps: {
  builds: BuildService;
  images: ImageService;
  prefix: string;
  draining: AbortSignal;
  /** The form filled in from a revision of one of the user's images ("Build from this", revisions/). */
  prefill?: (actor: HubIdentity, imageId: number, revision: number) => Promise<{ values: Record<string, string>; notice: string }>;
  /** The hub's public origin (JUPYTERHUB_PUBLIC_URL) for links shown to be pasted elsewhere; else the request's. */
  publicOrigin?: string | undefined;
}): Router {
  const { builds, images, prefix, draining } = deps;
  const router = Router();
  const owner = loggedInUser;

  async function renderForm(
    req: Request,
    res: Response,
    options: {
      values: FormValues;
      imageId?: number;
      tokenStored?: boolean;
      files?: Array<{ name: string; size: number }>;
      errors?: Record<string, string>;
      status?: number;
      notice?: string;
    },
  ) {
    const systems = await builds.systemsFor(owner(req));
    const selected = options.values.system || systems[0]?.slug || '';
    res.status(options.status ?? 200).render('pages/build-form', {
      title: options.imageId ? `Rebuild ${options.values.name}` : 'Build an image',
      action: options.imageId ? `${prefix}images/${options.imageId}/rebuild` : `${prefix}builds`,
      rebuild: options.imageId !== undefined,
      values: options.values,
      errors: options.errors ?? {},
      hasErrors: Object.keys(options.errors ?? {}).length > 0,
      systems: systems.map((s) => ({ ...s, selected: s.slug === selected })),
      bases: systems.flatMap((s) =>
        s.build.baseImages.map((b) => ({
          ...b,
          system: s.displayName,
          selected: b.name === options.values.base || b.image === options.values.base,
        })),
      ),
      mode: options.values.mode === 'dockerfile' || options.values.mode === 'repository' ? options.values.mode : 'packages',
      tokenHelp: `${options.tokenStored ? 'A token is stored; leave this blank to keep it. ' : ''}Stored encrypted, used only to fetch the repository.`,
      files: options.files ?? [],
      notice: options.notice,
      csrfToken: req.csrfToken?.(),
    });
  }

  /** Runs a build request; a refused input shows the form again with the messages next to their fields. */
  async function submit(req: Request, res: Response, imageId: number | undefined) {
    const user = owner(req);
    const body = (req.body ?? {}) as Record<string, unknown>;
    try {
      if (imageId === undefined) {
        // A repository commit built already answers that image's build (one build per commit), not build 1.
        const { image, build } = await builds.create(user, user.name, body, req.uploads ?? []);
        return res.redirect(303, `${prefix}images/${image.id}/builds/${build.number}`);
      }
      const edited = typeof body.mode === 'string' ? body : undefined;
      const build = await builds.rebuild(user, user.name, imageId, edited, req.uploads ?? []);
      return res.redirect(303, `${prefix}images/${imageId}/builds/${build.number}`);
    } catch (err) {
      if (!(err instanceof AppError) || Object.keys(err.fields).length === 0) throw err;
      const values = formValues(body);
      if (imageId === undefined) return renderForm(req, res, { values, errors: err.fields, status: err.status });
      // A refused rebuild still keeps the stored token and files when left blank: the form says so again.
      values.name = (await images.get(user, user.name, imageId)).name;
      const inputs = (await builds.newest(user, user.name, imageId))?.inputs;
      await renderForm(req, res, {
        values,
        imageId,
        tokenStored: inputs?.gitTokenStored ?? false,
        files: inputs?.files ?? [],
        errors: err.fields,
        status: err.status,
      });
    }
  }

  router.get('/builds/new', async (req, res) => {
    // ?from=IMAGE&revision=N: base image + packages with that revision's pins.
    const from = req.query.from === undefined ? undefined : parseId(req.query.from);
    const filled =
      from !== undefined && deps.prefill ? await deps.prefill(owner(req), from, parseId(req.query.revision, 'Revision')) : undefined;
    await renderForm(req, res, { values: formValues(filled?.values ?? {}), notice: filled?.notice });
  });
  router.post('/builds', (req, res) => submit(req, res, undefined));
  router.post('/images/:id/rebuild', (req, res) => submit(req, res, parseId(req.params.id)));
  router.get('/images/:id/rebuild', async (req, res) => {
    const user = owner(req);
    const image = await images.get(user, user.name, parseId(req.params.id));
    const newest = await builds.newest(user, user.name, image.id);
    if (!newest) return res.redirect(303, `${prefix}images/${image.id}/edit`);
    const { inputs } = newest;
    const mode = typeof req.query.mode === 'string' ? req.query.mode : undefined;
    await renderForm(req, res, {
      values: inputsAsValues(
        inputs,
        {
          name: image.name,
          description: image.description,
          system: image.system.slug,
          mountPath: image.mountPathIsDefault ? '' : image.mountPath,
        },
        mode,
      ),
      imageId: image.id,
      tokenStored: inputs.gitTokenStored,
      files: inputs.files,
    });
  });

  router.get('/images/:id/builds/:number', async (req, res) => {
    const user = owner(req);
    const image = await images.get(user, user.name, parseId(req.params.id));
    const found = await builds.get(user, user.name, image.id, parseId(req.params.number, 'Build'));
    const history = await builds.list(user, user.name, image.id);
    res.render('pages/build', {
      title: `Build ${found.build.number} of ${image.name}`,
      refreshSeconds: isBuildActive(found.build.status) ? 3 : undefined,
      image,
      build: presentBuildPage(found.build),
      buildLog: found.log,
      inputs: found.inputs,
      history: history.map(presentBuildPage),
      csrfToken: req.csrfToken?.(),
      // A whole public repository opens from a link (links/): the link and a badge to paste into its README.
      // A private one (a token stored) cannot: links carry no token.
      share:
        found.inputs.gitUrl && !found.inputs.gitDirectory && !found.inputs.gitTokenStored
          ? presentShareLink(deps.publicOrigin ?? `${req.protocol}://${req.get('host') ?? 'localhost'}`, prefix, {
              repo: found.inputs.gitUrl,
              ref: found.inputs.gitRef,
              system: image.system.slug,
              urlpath: '',
            })
          : undefined,
    });
  });

  // Server-Sent Events: the build's state and log until it ends (any replica can serve it).
  router.get(
    '/images/:id/builds/:number/events',
    jobEvents<{ build: BuildView; log: string }>({
      draining,
      jobParam: 'number',
      jobName: 'Build',
      follow: builds.follow.bind(builds),
      present: ({ build, log }) => {
        const page = presentBuildPage(build);
        return {
          event: { status: build.status, label: build.label, duration: page.duration, log },
          ended: page.active ? undefined : { status: build.status },
        };
      },
    }),
  );
  return router;
}
