/**
 * Sharing as the API answers it, each answer parsed by its schema: someone
 * else's image as a receiver sees it, with whom an owner's image is shared,
 * and publications for admins. Never a credential or a check log.
 */
import { z } from 'zod';
import type { PublicationView, PublishedImageView, SharedImageView, SharesView } from '../../sharing/service.js';
import { ImageResponseSchema, StatusSchema } from './images.js';

/** Whose image, which, where: what every answer about someone else's image starts with. */
const ImageNamedSchema = ImageResponseSchema.pick({ id: true, owner: true, name: true, system: true, image: true });

/** Someone else's image as a receiver sees it: no credential, no registry login, no check log. */
export const SharedImageResponseSchema = ImageNamedSchema.extend({
  mountPath: z.string(),
  status: StatusSchema.omit({ checkId: true }),
  access: z.enum(['published', 'shared']),
  /** The admin's publication text while the publication serves ('' otherwise); kept under this name for older hooks. */
  description: z.string(),
  /** The owner's own description of the image, as on their tile. */
  ownerDescription: z.string(),
  groups: z.array(z.string()),
});

export function presentShared(image: SharedImageView): z.infer<typeof SharedImageResponseSchema> {
  return SharedImageResponseSchema.parse({
    ...image,
    image: image.reference,
    status: { code: image.status.code, label: image.status.label, at: image.status.at?.toISOString() ?? null },
  });
}

/** A publication: the digest published, and why it no longer serves (null while it does). */
const PublicationSchema = z.object({
  at: z.string(),
  by: z.string(),
  description: z.string(),
  digest: z.string().nullable(),
  withdrawn: z.string().nullable(),
});

function presentPublication(publication: PublicationView): z.infer<typeof PublicationSchema> {
  return { ...publication, at: publication.at.toISOString() };
}

/** With whom an image is shared, for its owner. */
export const SharesResponseSchema = z.object({
  groups: z.array(z.string()),
  published: PublicationSchema.nullable(),
  launchesByOthers: z.number().int(),
});

export function presentShares(shares: SharesView): z.infer<typeof SharesResponseSchema> {
  return SharesResponseSchema.parse({
    ...shares,
    published: shares.published ? presentPublication(shares.published) : null,
  });
}

/** A published image, for admins. */
export const PublishedImageResponseSchema = ImageNamedSchema.extend({
  ownerDescription: z.string(),
  publication: PublicationSchema,
});

export function presentPublished(image: PublishedImageView): z.infer<typeof PublishedImageResponseSchema> {
  return PublishedImageResponseSchema.parse({ ...image, image: image.reference, publication: presentPublication(image.publication) });
}
