/**
 * Admin pages: systems, registry credentials, and the images published for everyone. SystemService lets hub
 * admins and holders of custom:custom-images:admin in; anyone else gets 403.
 */
import { Router, type Request, type Response } from 'express';
import { AppError } from '../errors.js';
import { DEFAULT_GID, DEFAULT_UID, type System } from '../systems/schema.js';
import { DEFAULT_STORAGE, storageToInput } from '../systems/storage.js';
import type { SharingService } from '../sharing/service.js';
import type { SystemService } from '../systems/service.js';
import { loggedInUser } from './auth.js';
import { parseSlug } from './params.js';

const actor = loggedInUser;

/** The form's values for a system (lists one per line). */
function formValues(system: Partial<System> | Record<string, unknown>) {
  const s = system as Partial<System> & Record<string, unknown>;
  const lines = (v: unknown) => (Array.isArray(v) ? v.join('\n') : typeof v === 'string' ? v : '');
  const flag = (v: unknown) => v === true || v === 'on';
  return {
    slug: s.slug ?? '',
    displayName: s.displayName ?? '',
    description: s.description ?? '',
    enabled: s.policy ? s.enabled !== false : flag(s.enabled),
    allowedRegistries: lines(s.allowedRegistries),
    mountPrefixes: lines(s.mountPrefixes),
    defaultMountPath: s.defaultMountPath ?? '',
    platform: s.platform ?? 'linux/amd64',
    spawnerDocker: (s.spawner ?? 'docker') === 'docker',
    runCheck: s.policy ? s.policy.runCheck : flag(s.runCheck),
    uid: s.policy ? String(s.policy.uid) : String(s.uid ?? ''),
    uidMax: s.policy ? String(s.policy.uidMax ?? '') : String(s.uidMax ?? ''),
    gid: s.policy ? String(s.policy.gid) : String(s.gid ?? ''),
    requireUser: s.policy ? s.policy.requireUser : flag(s.requireUser),
    requirePip: s.policy ? s.policy.requirePip : flag(s.requirePip),
    pythonMin: s.policy ? (s.policy.python?.min ?? '') : (s.pythonMin ?? ''),
    pythonMax: s.policy ? (s.policy.python?.max ?? '') : (s.pythonMax ?? ''),
    buildEnabled: s.build ? s.build.enabled : flag(s.buildEnabled),
    buildPushTo: s.build ? s.build.pushTo : (s.buildPushTo ?? ''),
    buildNetwork: s.build ? s.build.network : (s.buildNetwork ?? 'default'),
    buildBaseImages: s.build
      ? s.build.baseImages.map((b) => (b.name === b.image ? b.image : `${b.name} = ${b.image}`)).join('\n')
      : lines(s.buildBaseImages),
    buildGitHosts: s.build ? (s.build.gitHosts ?? []).join('\n') : lines(s.buildGitHosts),
    buildPipIndexUrl: s.build ? (s.build.mirrors?.pipIndexUrl ?? '') : String(s.buildPipIndexUrl ?? ''),
    buildPipExtraIndexUrl: s.build ? (s.build.mirrors?.pipExtraIndexUrl ?? '') : String(s.buildPipExtraIndexUrl ?? ''),
    buildCondaChannels: s.build ? (s.build.mirrors?.condaChannels ?? []).join('\n') : lines(s.buildCondaChannels),
    buildAptSources: s.build ? (s.build.mirrors?.aptSources ?? []).join('\n') : lines(s.buildAptSources),
    ...storageValues(s),
    keptRevisions: String(s.keptRevisions ?? ''),
  };
}

/** The quota and retention fields: a stored system's settings, or what the form sent back. */
function storageValues(s: Partial<System> & Record<string, unknown>): Record<string, string> {
  const stored = s.policy ? storageToInput(s.storage ?? DEFAULT_STORAGE) : undefined;
  return Object.fromEntries(
    Object.keys(storageToInput(DEFAULT_STORAGE)).map((key) => {
      const value = stored ? stored[key] : s[key];
      return [key, value === null || value === undefined ? '' : String(value)];
    }),
  );
}

export function adminPagesRouter(deps: { systems: SystemService; sharing: SharingService; prefix: string }): Router {
  const { systems, sharing, prefix } = deps;
  const router = Router();

  const renderList = async (req: Request, res: Response, extra: Record<string, unknown> = {}, status = 200) => {
    res.status(status).render('pages/admin-systems', {
      title: 'Systems',
      systems: await systems.listAll(actor(req)),
      credentials: await systems.listCredentials(actor(req)),
      publications: await sharing.publications(actor(req)),
      csrfToken: req.csrfToken?.(),
      credentialErrors: {},
      credentialValues: { pattern: '', username: '' },
      ...extra,
    });
  };
  const renderForm = (
    req: Request,
    res: Response,
    options: { editing?: string; values: ReturnType<typeof formValues>; errors?: Record<string, string>; status?: number },
  ) => {
    res.status(options.status ?? 200).render('pages/admin-system-form', {
      title: options.editing ? `Edit ${options.values.displayName}` : 'New system',
      action: options.editing ? `${prefix}admin/systems/${options.editing}` : `${prefix}admin/systems`,
      editing: options.editing,
      values: options.values,
      errors: options.errors ?? {},
      hasErrors: Object.keys(options.errors ?? {}).length > 0,
      csrfToken: req.csrfToken?.(),
    });
  };
  const save = async (req: Request, res: Response, slug: string | undefined) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    try {
      if (slug) await systems.update(actor(req), slug, body);
      else await systems.create(actor(req), body);
      res.redirect(303, `${prefix}admin/systems`);
    } catch (err) {
      if (!(err instanceof AppError) || Object.keys(err.fields).length === 0) throw err;
      renderForm(req, res, { editing: slug, values: formValues(body), errors: err.fields, status: err.status });
    }
  };
  router.get('/admin/systems', (req, res) => renderList(req, res));
  router.get('/admin/systems/new', (req, res) => {
    systems.ensureAdmin(actor(req));
    renderForm(req, res, {
      values: {
        ...formValues({}),
        enabled: true,
        defaultMountPath: '/home/jovyan/work',
        allowedRegistries: 'docker.io/*',
        mountPrefixes: '/home/jovyan',
        uid: String(DEFAULT_UID),
        gid: String(DEFAULT_GID),
      },
    });
  });
  router.post('/admin/systems', (req, res) => save(req, res, undefined));
  router.get('/admin/systems/:slug/edit', async (req, res) => {
    const system = await systems.getForEdit(actor(req), parseSlug(req.params.slug));
    renderForm(req, res, { editing: system.slug, values: formValues(system) });
  });
  router.post('/admin/systems/:slug', (req, res) => save(req, res, parseSlug(req.params.slug)));

  router.post('/admin/credentials', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, string>;
    try {
      await systems.putCredential(actor(req), body);
      res.redirect(303, `${prefix}admin/systems#credentials`);
    } catch (err) {
      if (!(err instanceof AppError) || Object.keys(err.fields).length === 0) throw err;
      await renderList(
        req,
        res,
        { credentialErrors: err.fields, credentialValues: { pattern: body.pattern ?? '', username: body.username ?? '' } },
        err.status,
      );
    }
  });
  router.post('/admin/credentials/:id/delete', async (req, res) => {
    await systems.deleteCredential(actor(req), String(req.params.id));
    res.redirect(303, `${prefix}admin/systems#credentials`);
  });
  return router;
}
