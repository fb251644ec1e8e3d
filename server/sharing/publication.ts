/**
 * A publication is of a digest: an admin publishes the content they saw,
 * and everyone is offered it only while the image is checked at that
 * digest. An edit, a rebuild or a new check by the owner that leaves the
 * image at other content withdraws it: it is not offered, a launch of it is
 * refused in words, and the owner's and admin's pages say why, until an
 * admin publishes it again (or the owner brings it back to the published
 * digest, the content the admin agreed to). Chosen over serving the old
 * digest on, which would keep content the owner has moved on from pullable
 * and launchable under their name. Derived from the image and its newest
 * check each time, so that no write path can forget it; pure.
 */
import { imageStatus, type CheckSummary } from '../images/status.js';
import type { ImageRow } from '../images/store.js';

/** Whether a publication serves, and if not, why (words that follow "withdrawn: "). */
export type PublicationState = { serving: true } | { serving: false; why: string };

/** The digest a launch of the image starts, from its newest check: its platform manifest's. */
export function checkedDigest(check: Pick<CheckSummary, 'digest' | 'manifestDigest'>): string | null {
  return check.manifestDigest ?? check.digest;
}

/** The state of `image`'s publication given its newest check; undefined when it is not published. */
export function publicationState(image: ImageRow, check: CheckSummary | undefined): PublicationState | undefined {
  const published = image.published;
  if (!published) return undefined;
  if (published.digest === null) return { serving: false, why: 'it was published before publications named a digest' };
  // Without its build: a publication serves what was checked, and a rebuild changes nothing until its result is checked.
  const status = imageStatus(image, check);
  switch (status.code) {
    case 'never':
    case 'changed':
    case 'building':
    case 'build_failed':
      return { serving: false, why: `${image.owner} changed it after it was published (it is now ${image.reference}, not checked yet)` };
    case 'checking':
      return { serving: false, why: `${image.owner} is checking it again` };
    case 'failed':
      return { serving: false, why: 'its newest check failed' };
    case 'passed': {
      const digest = check ? checkedDigest(check) : null;
      if (digest === published.digest) return { serving: true };
      return {
        serving: false,
        why: `${image.owner} changed it: it is now ${digest ?? 'of no known digest'}, not the published ${published.digest}`,
      };
    }
  }
}

/** Whether everyone may use the image now because it is published (and the publication serves). */
export function servesPublication(image: ImageRow, check: CheckSummary | undefined): boolean {
  return publicationState(image, check)?.serving === true;
}
