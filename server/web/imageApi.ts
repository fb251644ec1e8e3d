/**
 * Image configurations in the JSON API: the same schema and service as the
 * form. Only the owner writes; holders of the launch scope may read any.
 */
import type { Request, Router } from 'express';
import { z } from 'zod';
import { AppError, notFound } from '../errors.js';
import { SCOPES, hasAccessScope, hasScope, type HubIdentity } from '../hub/identity.js';
import { FindingSchema } from '../checks/report.js';
import type { CheckService } from '../checks/service.js';
import type { CheckRow } from '../checks/store.js';
import type { ImageService, ImageView } from '../images/service.js';
import { identityOf } from './apiAuth.js';
import { parseId, readinessText } from './imagePages.js';

export const ImageResponseSchema = z.object({
  id: z.number().int().positive(),
  owner: z.string(),
  name: z.string(),
  system: z.object({ slug: z.string(), displayName: z.string(), enabled: z.boolean() }),
  imageInput: z.string(),
  image: z.string(),
  registry: z.string(),
  mountPath: z.string(),
  mountPathIsDefault: z.boolean(),
  credential: z.object({ registry: z.string(), username: z.string() }).nullable(),
  status: z.object({
    code: z.enum(['never', 'checking', 'passed', 'failed', 'changed']),
    label: z.string(),
    at: z.string().nullable(),
    checkId: z.number().int().nullable(),
  }),
  /** Checked images on a Docker system: pulled into the engine in advance, so that Start is fast. */
  start: z
    .object({ state: z.enum(['preparing', 'ready', 'failed']), percent: z.number().int().nullable(), message: z.string().nullable(), text: z.string() })
    .nullable(),
  warnings: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type ImageResponse = z.infer<typeof ImageResponseSchema>;

/** The API's form of an image: no secret, dates as ISO strings. */
export function presentImage(image: ImageView): ImageResponse {
  return ImageResponseSchema.parse({
    id: image.id,
    owner: image.owner,
    name: image.name,
    system: image.system,
    imageInput: image.referenceInput,
    image: image.reference,
    registry: image.registry,
    mountPath: image.mountPath,
    mountPathIsDefault: image.mountPathIsDefault,
    credential: image.credential ?? null,
    status: { ...image.status, at: image.status.at?.toISOString() ?? null, checkId: image.status.checkId ?? null },
    start: image.start
      ? {
          state: image.start.state,
          percent: image.start.state === 'preparing' ? image.start.percent : null,
          message: image.start.state === 'failed' ? image.start.message : null,
          text: readinessText(image.start),
        }
      : null,
    warnings: image.warnings,
    createdAt: image.createdAt.toISOString(),
    updatedAt: image.updatedAt.toISOString(),
  });
}

const USER_NAME = /^[^/\s]{1,255}$/;

/** `?system=SLUG&status=passed`: unknown keys and malformed values are refused. */
const ListQuerySchema = z
  .object({
    system: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'a system slug: letters, digits, ".", "_", "-"').optional(),
    status: z.enum(['never', 'checking', 'passed', 'failed', 'changed'], { message: 'one of never, checking, passed, failed, changed' }).optional(),
  })
  .strict();

/** May `identity` act on `name`'s images? 403 for a token that may use nothing here, 404 for someone else's. */
export function authorizeUser(identity: HubIdentity, name: string, access: readonly string[], mode: 'read' | 'write'): void {
  if (!USER_NAME.test(name)) throw new AppError(400, 'bad_request', 'The user name in the URL is not valid', { field: 'name' });
  const launcher = hasScope(identity, SCOPES.launch);
  const self = identity.kind === 'user' && identity.name === name;
  if (self && hasAccessScope(identity, access)) return;
  if (mode === 'read' && launcher) return;
  if (!hasAccessScope(identity, access) && !launcher) {
    throw new AppError(403, 'forbidden', `This token has no access to custom-images; it needs the scope ${access[0]}`);
  }
  // Someone else's images look exactly like no images.
  throw notFound('User');
}

export const CheckResponseSchema = z.object({
  id: z.number().int().positive(),
  imageId: z.number().int().nullable(),
  owner: z.string(),
  system: z.string(),
  image: z.string(),
  digest: z.string().nullable(),
  platform: z.string(),
  kind: z.enum(['static', 'full']),
  status: z.enum(['queued', 'running', 'passed', 'failed', 'error']),
  findings: z.array(FindingSchema),
  reusedFrom: z.number().int().nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  durationMs: z.number().int().nullable(),
  log: z.string(),
});

/** The API's form of a check. */
export function presentCheck(check: CheckRow): z.infer<typeof CheckResponseSchema> {
  return CheckResponseSchema.parse({
    id: check.id,
    imageId: check.imageId,
    owner: check.owner,
    system: check.system,
    image: check.reference,
    digest: check.digest,
    platform: check.platform,
    kind: check.kind,
    status: check.status,
    findings: check.findings,
    reusedFrom: check.reusedFrom,
    createdAt: check.createdAt.toISOString(),
    startedAt: check.startedAt?.toISOString() ?? null,
    finishedAt: check.finishedAt?.toISOString() ?? null,
    durationMs: check.durationMs,
    log: check.log,
  });
}

/** Adds the image and check routes to the API router (behind its token check). */
export function imageApiRoutes(router: Router, deps: { images: ImageService; checks: CheckService; queued: () => void; accessScopes: readonly string[] }): void {
  const { images, checks, accessScopes } = deps;
  const allow = (req: Request, mode: 'read' | 'write') => {
    const identity = identityOf(req);
    const name = String(req.params.name);
    authorizeUser(identity, name, accessScopes, mode);
    return { identity, name };
  };

  router.get('/users/:name/images', async (req, res) => {
    const { name } = allow(req, 'read');
    const query = ListQuerySchema.safeParse(req.query);
    if (!query.success) {
      throw new AppError(400, 'bad_request', `${query.error.issues[0]?.path.join('.') ?? 'query'}: ${query.error.issues[0]?.message ?? 'invalid'}`, { field: String(query.error.issues[0]?.path[0] ?? 'query') });
    }
    const list = await images.list(name);
    const { system, status } = query.data;
    res.json(list.filter((i) => (!system || i.system.slug === system) && (!status || i.status.code === status)).map(presentImage));
  });
  router.post('/users/:name/images', async (req, res) => {
    const { identity, name } = allow(req, 'write');
    res.status(201).json(presentImage(await images.create(identity, name, req.body)));
  });
  router.get('/users/:name/images/:id', async (req, res) => {
    const { name } = allow(req, 'read');
    res.json(presentImage(await images.get(name, parseApiId(req.params.id))));
  });
  router.put('/users/:name/images/:id', async (req, res) => {
    const { identity, name } = allow(req, 'write');
    res.json(presentImage(await images.update(identity, name, parseApiId(req.params.id), req.body)));
  });
  router.post('/users/:name/images/:id/check', async (req, res) => {
    // The user, or the spawner hook (launch scope) before a launch.
    const { identity, name } = allow(req, 'read');
    const job = await checks.request(identity, name, parseApiId(req.params.id));
    deps.queued();
    res.status(202).json(presentCheck(job));
  });
  router.get('/checks/:id', async (req, res) => {
    const identity = identityOf(req);
    const id = parseApiId(req.params.id);
    const check = await checks.getAny(id);
    authorizeUser(identity, check?.owner ?? identity.name, accessScopes, 'read');
    if (!check) throw notFound('Check');
    res.json(presentCheck(check));
  });
  router.delete('/users/:name/images/:id', async (req, res) => {
    const { identity, name } = allow(req, 'write');
    await images.remove(identity, name, parseApiId(req.params.id));
    res.status(204).end();
  });
}

/** In the API a malformed id is the caller's mistake (400), not a missing image. */
export function parseApiId(raw: unknown): number {
  try {
    return parseId(raw);
  } catch {
    throw new AppError(400, 'bad_request', 'The image id must be a positive whole number', { field: 'id' });
  }
}
