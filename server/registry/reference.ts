/**
 * Image references per the distribution reference grammar
 * (github.com/distribution/reference), normalised as Docker does:
 * `jupyter/base-notebook` -> `docker.io/jupyter/base-notebook:latest`,
 * `python` -> `docker.io/library/python:latest`.
 *
 * Pure: no network, no configuration.
 */

/** Docker Hub's canonical name, and the names that mean it. */
export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com', 'hub.docker.com']);
/** Where Docker Hub's registry API answers. */
const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
/** The key Docker writes Docker Hub credentials under in config.json / .dockerconfigjson. */
const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

/** The distribution project's limit on the whole name (registry and path). */
const NAME_MAX_LENGTH = 255;

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|-+)';
const PATH_COMPONENT = new RegExp(`^${ALNUM}(?:${SEPARATOR}${ALNUM})*$`);
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
// Hexadecimal groups only, as Docker's grammar: no embedded IPv4, no zone.
const IPV6_HOST = /^\[[0-9a-fA-F:]+\]$/;
/** A bare image ID: Docker refuses it as a name, and so do we. */
const IMAGE_ID = /^[a-f0-9]{64}$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):([0-9a-fA-F]{32,})$/;
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

/** A parsed, normalised image reference. */
export interface ImageReference {
  /** `docker.io` for Docker Hub, else `host[:port]` in lower case. */
  registry: string;
  /** The repository path, with `library/` for Docker Hub's official images. */
  repository: string;
  /** The tag; `latest` when neither tag nor digest was given. */
  tag: string | undefined;
  digest: string | undefined;
  /** `registry/repository[:tag][@digest]`, fully spelled out. */
  normalized: string;
  /** True when the reference names no tag or `latest`, and no digest. */
  unpinned: boolean;
}

/** Why a reference is invalid, in words for the person who typed it. */
export class ReferenceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReferenceError';
  }
}

/** Maps Docker Hub's aliases to `docker.io` and lower-cases host names. */
function normalizeRegistryHost(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? DOCKER_HUB : lower;
}

/** The host that serves the registry API for a normalised registry name. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : registry;
}

/** The key under which a `.dockerconfigjson` holds credentials for `registry`. */
export function registryAuthKey(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_AUTH_KEY : registry;
}

/** Strips a leading `https://` (and `http://`), as people paste registry URLs. */
export function stripScheme(input: string): string {
  return input.replace(/^https?:\/\//i, '');
}

/** Checks `host[:port]`; returns an explanation when it is not one. */
export function hostProblem(domain: string): string | undefined {
  const match = /^(\[[^\]]*\]|[^:]+)(?::(\d+))?$/.exec(domain);
  if (!match) return `"${domain}" is not a registry host: write host or host:port, e.g. registry.example.com:5000`;
  const [, host = '', port] = match;
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
    return `the port in "${domain}" must be between 1 and 65535`;
  }
  if (IPV6_HOST.test(host)) return undefined;
  if (!host.split('.').every((c) => DOMAIN_COMPONENT.test(c))) {
    return `"${host}" is not a valid host name: use letters, digits, dots and inner hyphens`;
  }
  return undefined;
}

/**
 * The first component is a registry if it has a dot or a colon or is
 * `localhost`. (Docker also takes a capitalised first component for a host;
 * we do not, so that `MyLab/env` gets "repository names are lowercase"
 * rather than a lookup of a host called mylab.)
 */
function looksLikeDomain(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/**
 * Parses and normalises an image reference.
 *
 * @throws ReferenceError saying what is wrong and what is allowed.
 */
export function parseReference(input: string): ImageReference {
  if (input.trim() === '') {
    throw new ReferenceError('Enter an image, e.g. jupyter/datascience-notebook:2024-05-01');
  }
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(input)) {
    throw new ReferenceError('An image reference has no spaces, tabs, line breaks or control characters');
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input) && !/^https?:\/\//i.test(input)) {
    throw new ReferenceError('Only an https:// prefix is understood; write the image as registry/path:tag');
  }
  const text = stripScheme(input);
  if (IMAGE_ID.test(text)) {
    throw new ReferenceError(
      'That is an image ID, not an image name: write the repository, e.g. registry.example.com/lab/env@sha256:… for a digest',
    );
  }

  // Split off the digest, then the tag (a colon after the last slash).
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const m = DIGEST.exec(digest);
    if (!m) throw new ReferenceError(`"@${digest}" is not a digest: write @sha256: followed by 64 hexadecimal digits`);
    const [, algorithm = '', hex = ''] = m;
    const expected = DIGEST_HEX_LENGTH[algorithm];
    if (expected === undefined) throw new ReferenceError(`Unsupported digest algorithm "${algorithm}": use sha256 or sha512`);
    if (hex.length !== expected || hex !== hex.toLowerCase()) {
      throw new ReferenceError(`A ${algorithm} digest has exactly ${expected} lowercase hexadecimal digits`);
    }
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw new ReferenceError(
        tag === ''
          ? 'The tag after ":" is empty: write a tag such as :2024-05-01, or leave out the colon'
          : `"${tag}" is not a valid tag: up to 128 letters, digits, "_", "." and "-", not starting with "." or "-"`,
      );
    }
  }
  if (rest === '') throw new ReferenceError('The image has no repository name, e.g. jupyter/base-notebook');

  const components = rest.split('/');
  let registry: string = DOCKER_HUB;
  if (components.length > 1 && looksLikeDomain(components[0] ?? '')) {
    const domain = components.shift() ?? '';
    const problem = hostProblem(domain);
    if (problem) throw new ReferenceError(problem);
    registry = normalizeRegistryHost(domain);
  }
  for (const component of components) {
    if (component === '') {
      throw new ReferenceError('The repository path has an empty part ("//" or a "/" at the start or end)');
    }
    if (component !== component.toLowerCase()) {
      throw new ReferenceError(`Repository names are lowercase: "${component}" should be "${component.toLowerCase()}"`);
    }
    if (!PATH_COMPONENT.test(component)) {
      throw new ReferenceError(
        `"${component}" is not a valid part of a repository name: lowercase letters and digits, separated by ".", "_", "__" or "-"`,
      );
    }
  }
  let repository = components.join('/');
  if (registry === DOCKER_HUB && components.length === 1) repository = `library/${repository}`;

  const nameLength = `${registry}/${repository}`.length;
  if (nameLength > NAME_MAX_LENGTH) {
    throw new ReferenceError(`The image name is ${nameLength} characters long; at most ${NAME_MAX_LENGTH} are allowed`);
  }
  if (tag === undefined && digest === undefined) tag = 'latest';
  const normalized = `${registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return { registry, repository, tag, digest, normalized, unpinned: digest === undefined && tag === 'latest' };
}

/**
 * Parses what people type in a "registry" field: `registry.example.com`,
 * `https://registry.example.com/`, `localhost:5000`. Returns the normalised host.
 *
 * @throws ReferenceError for anything that is not a bare host.
 */
export function parseRegistryHost(input: string): string {
  const text = stripScheme(input.trim()).replace(/\/+$/, '');
  if (text === '') throw new ReferenceError('Enter the registry host, e.g. registry.example.com');
  if (text.includes('/')) {
    throw new ReferenceError(`Enter only the registry's host, e.g. ${text.split('/')[0]}, without a path`);
  }
  const problem = hostProblem(text);
  if (problem) throw new ReferenceError(problem);
  return normalizeRegistryHost(text);
}

/** The image as the engine names it: `registry/repository@digest`. */
export function pinnedImage(reference: Pick<ImageReference, 'registry' | 'repository'>, digest: string): string {
  return `${reference.registry}/${reference.repository}@${digest}`;
}
