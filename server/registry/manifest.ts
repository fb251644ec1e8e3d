/**
 * What a manifest the registry sent is: an image index, an image manifest,
 * or something we refuse, and whether it is what its digest says. Pure.
 */
import { RegistryError } from './errors.js';
import { digestOf } from './digest.js';
import { MEDIA } from './media.js';

export interface ParsedManifest {
  kind: 'index' | 'manifest';
  /** The digest of the bytes, as the registry must have addressed them. */
  digest: string;
  body: Record<string, unknown>;
}

/**
 * Reads a manifest's bytes. `claimedDigest` is the digest it was asked by, or
 * the registry's Docker-Content-Digest; `contentType` decides when the body
 * names no media type.
 */
export function parseManifest(bytes: Uint8Array, claimedDigest: string | undefined, contentType: string | undefined): ParsedManifest {
  const computed = digestOf(bytes, claimedDigest);
  if (claimedDigest && claimedDigest !== computed) {
    throw new RegistryError(
      'registry.digest_mismatch',
      `The manifest the registry sent does not match its digest (${claimedDigest}). The registry or something between us altered it.`,
      {
        detail: `computed ${computed}`,
      },
    );
  }
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch (cause) {
    throw new RegistryError('registry.protocol', 'The manifest is not valid JSON.', { cause });
  }
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw new RegistryError('registry.protocol', 'The manifest is not a JSON object.');
  const mediaType = String(body.mediaType ?? contentType?.split(';')[0]?.trim() ?? '');
  if (mediaType === MEDIA.dockerSchema1 || mediaType === MEDIA.dockerSchema1Signed || body.schemaVersion === 1) {
    throw new RegistryError(
      'registry.unsupported',
      'This image uses the old Docker schema 1 manifest; push it again with a current Docker or buildx.',
    );
  }
  const isIndex = mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList || (mediaType === '' && Array.isArray(body.manifests));
  const isManifest =
    mediaType === MEDIA.ociManifest || mediaType === MEDIA.dockerManifest || (mediaType === '' && body.config !== undefined);
  if (!isIndex && !isManifest)
    throw new RegistryError('registry.unsupported', `The registry sent a manifest of type "${mediaType}", which is not an image.`);
  return { kind: isIndex ? 'index' : 'manifest', digest: computed, body };
}
