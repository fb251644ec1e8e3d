/**
 * Route parameters, parsed once: a malformed id is a page that does not
 * exist, but in the API the caller's mistake (400, naming the field).
 */
import { z } from 'zod';
import { badRequest, notFound } from '../errors.js';
import { inputError } from '../forms.js';
import { IMAGE_STATUSES, type ImageStatusCode } from '../images/status.js';
import { SLUG, SLUG_RULE } from '../systems/schema.js';

const ID = /^[1-9][0-9]{0,9}$/;
/** What a hub user name may be in a URL path. */
const USER_NAME = /^[^/\s]{1,255}$/;

/** A page's id: a positive integer, or 404. */
export function parseId(raw: unknown, what = 'Image'): number {
  if (typeof raw !== 'string' || !ID.test(raw)) throw notFound(what);
  return Number(raw);
}

/** An API id: a positive integer, or 400 naming it. */
export function parseApiId(raw: unknown): number {
  if (typeof raw !== 'string' || !ID.test(raw)) throw badRequest('id', 'The id must be a positive whole number');
  return Number(raw);
}

/** A user name in an API path, or 400. */
export function parseUserName(raw: unknown): string {
  if (typeof raw !== 'string' || !USER_NAME.test(raw)) throw badRequest('name', 'The user name in the URL is not valid');
  return raw;
}

/** A system slug in a page's path, or 404. */
export function parseSlug(raw: unknown): string {
  if (typeof raw !== 'string' || !SLUG.test(raw)) throw notFound('System');
  return raw;
}

/** `?system=SLUG&status=passed`: unknown keys and malformed values are refused. */
const ListQuerySchema = z
  .object({
    system: z.string().regex(SLUG, `a system slug: ${SLUG_RULE}`).optional(),
    status: z.enum(IMAGE_STATUSES, { message: `one of ${IMAGE_STATUSES.join(', ')}` }).optional(),
  })
  .strict();

/** An image list's filter, or 400 naming the parameter; `keep` says whether an image passes it. */
export function parseListQuery(raw: unknown): {
  keep(image: { system: { slug: string }; status: { code: ImageStatusCode } }): boolean;
} {
  const query = ListQuerySchema.safeParse(raw);
  if (!query.success) throw inputError(query.error, 'query');
  const { system, status } = query.data;
  return { keep: (image) => (!system || image.system.slug === system) && (!status || image.status.code === status) };
}
