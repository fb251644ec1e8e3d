/**
 * Revisions: the contents (digests) an image has had, numbered per image,
 * each recorded when a check passed or failed for content the image did not
 * have, with why it came (the first check, an edit, a rebuild, a moved tag).
 * The types and the input rules of the revision routes; pure.
 */
import { z } from 'zod';
import { invalidInput } from '../errors.js';
import { parseReference } from '../registry/reference.js';

/** Why an image got a new revision. */
export const REVISION_REASONS = ['first', 'edited', 'rebuilt', 'tag_moved'] as const;
export type RevisionReason = (typeof REVISION_REASONS)[number];

/** How pages and the API say a reason. */
export const REASON_TEXT: Record<RevisionReason, string> = {
  first: 'first check',
  edited: 'edited',
  rebuilt: 'rebuilt',
  tag_moved: 'tag moved',
};

/** One revision of an image, as stored. */
export interface Revision {
  id: number;
  imageId: number;
  owner: string;
  /** 1, 2, … per image. */
  number: number;
  /** The image reference the check read: a tag, or pinned (`…:tag@sha256:…`, a build's `…:3@sha256:…`). */
  reference: string;
  /** What the reference resolved to (an index or a manifest). */
  digest: string;
  /** The platform manifest a launch starts; null when the reference named one directly. */
  manifestDigest: string | null;
  platform: string;
  /** The newest check of this content for the image; null once that check is gone. */
  checkId: number | null;
  status: 'passed' | 'failed';
  reason: RevisionReason;
  /** The build that pushed this content, for images the service built. */
  buildId: number | null;
  buildNumber: number | null;
  createdAt: Date;
  updatedAt: Date;
}

/** The digest a launch of a revision starts (its platform manifest's). */
export function launchDigest(revision: Pick<Revision, 'digest' | 'manifestDigest'>): string {
  return revision.manifestDigest ?? revision.digest;
}

/**
 * The image reference that names exactly this revision's content: its
 * repository and tag, pinned by the digest the tag resolved to (as a built
 * image is pinned to its push). What a rollback sets the image to.
 */
export function pinnedReference(revision: Pick<Revision, 'reference' | 'digest'>): string {
  const reference = parseReference(revision.reference);
  const tag = reference.tag ? `:${reference.tag}` : '';
  return `${reference.registry}/${reference.repository}${tag}@${revision.digest}`;
}

/** A revision number in a route or a query: a whole number from 1. */
export const RevisionNumberSchema = z.coerce
  .number({ message: 'The revision is a whole number from 1, as the list of revisions shows it' })
  .int('The revision is a whole number from 1, as the list of revisions shows it')
  .min(1, 'The revision is a whole number from 1, as the list of revisions shows it')
  .max(2_147_483_646, 'The revision is a whole number from 1, as the list of revisions shows it');

/** The body of "accept": the revision the owner saw (optional; if given, it must still be the one pending). */
export const AcceptInputSchema = z.object({
  revision: RevisionNumberSchema.optional(),
});

/** What `revision` query values and bodies name, or 400 naming the field. */
export function parseRevision(raw: unknown, field = 'revision'): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const text = typeof raw === 'number' ? String(raw) : raw;
  if (typeof text !== 'string' || !/^[1-9][0-9]{0,9}$/.test(text) || Number(text) > 2_147_483_646) {
    throw invalidInput({ [field]: 'The revision is a whole number from 1, as the list of revisions shows it' });
  }
  return Number(text);
}
