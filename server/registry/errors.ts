/**
 * What can go wrong when reading an image from its registry, each with a
 * stable code and a message a researcher understands.
 */

/** Stable codes of registry failures. */
export type RegistryErrorCode =
  | 'registry.not_allowed' // the system does not allow this registry
  | 'registry.refused_address' // the registry resolves to a private, loopback or metadata address
  | 'registry.unreachable' // no connection (DNS, refused, timeout)
  | 'registry.tls' // the TLS handshake or certificate failed
  | 'registry.unauthorized' // the credentials were refused
  | 'registry.denied' // no access to the repository (private, or no such repository)
  | 'registry.not_found' // the image or tag does not exist
  | 'registry.rate_limited' // the registry kept answering 429
  | 'registry.server_error' // the registry kept answering 5xx
  | 'registry.digest_mismatch' // what was downloaded is not what the digest says
  | 'registry.too_large' // a manifest, config or layer exceeds our limits
  | 'registry.unsupported' // a media type or schema we cannot read
  | 'registry.protocol' // an answer that breaks the distribution spec
  | 'platform.missing'; // the image has no manifest for the platform

/** A registry failure; `message` is meant for the researcher, `detail` for the log. */
export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    options: { cause?: unknown; detail?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegistryError';
    this.detail = options.detail;
  }
  readonly detail: string | undefined;
}
