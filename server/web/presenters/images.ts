/**
 * Images as the API answers them (each answer parsed by its schema) and as
 * their tiles show them: the status images/status.ts decided, never a secret.
 */
import { z } from 'zod';
import type { ImageView, StartReadiness } from '../../images/service.js';
import { IMAGE_STATUSES } from '../../images/status.js';

/** "Preparing to start… 45 %", "Ready to start", or why it could not be prepared. */
function readinessText(start: StartReadiness): string {
  if (start.state === 'ready') return 'Ready to start';
  if (start.state === 'failed') return `Not prepared in advance (${start.message}); Start pulls the image`;
  return start.percent === null ? 'Preparing to start…' : `Preparing to start… ${start.percent} %`;
}

export const ImageResponseSchema = z.object({
  id: z.number().int().positive(),
  owner: z.string(),
  name: z.string(),
  /** The owner's description, plain text ('' for none): escape it wherever it is shown. */
  description: z.string(),
  system: z.object({ slug: z.string(), displayName: z.string(), enabled: z.boolean() }),
  imageInput: z.string(),
  image: z.string(),
  registry: z.string(),
  mountPath: z.string(),
  mountPathIsDefault: z.boolean(),
  credential: z.object({ registry: z.string(), username: z.string() }).nullable(),
  status: z.object({
    code: z.enum(IMAGE_STATUSES),
    label: z.string(),
    at: z.string().nullable(),
    checkId: z.number().int().nullable(),
  }),
  /** Checked images on a Docker system: pulled into the engine in advance, so that Start is fast. */
  start: z
    .object({
      state: z.enum(['preparing', 'ready', 'failed']),
      percent: z.number().int().nullable(),
      message: z.string().nullable(),
      text: z.string(),
    })
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
    description: image.description,
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

/** An image's status in an answer. */
export const StatusSchema = ImageResponseSchema.shape.status;

/** An image as its tile shows it: its status as images/status.ts decided it, and its newest build as presented for pages. */
export function presentTile<BuildPage>(image: ImageView, build?: BuildPage) {
  return {
    ...image,
    build,
    startText: image.start ? readinessText(image.start) : undefined,
    busy: image.status.code === 'checking' || image.status.code === 'building' || image.start?.state === 'preparing',
  };
}
