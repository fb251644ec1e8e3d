/**
 * A system: where custom images are offered and under which rules. Until
 * admins manage systems (issue #6), one default system comes from config.
 */
import { z } from 'zod';

/** What an image must satisfy on a system; the check fails images that do not. */
export const ImagePolicySchema = z.object({
  /** The image must also pass a run in Docker before it may launch. */
  runCheck: z.boolean().default(false),
  /** The image must have a user with uid 1000 (systems that run notebooks as 1000). */
  requireUid1000: z.boolean().default(false),
  /** Python version range, inclusive, as major.minor. */
  python: z
    .object({
      min: z.string().regex(/^\d+\.\d+$/, 'a version such as 3.9').optional(),
      max: z.string().regex(/^\d+\.\d+$/, 'a version such as 3.12').optional(),
    })
    .default({}),
  requirePip: z.boolean().default(false),
});
export type ImagePolicy = z.infer<typeof ImagePolicySchema>;

/** The policy with nothing required. */
export const OPEN_POLICY: ImagePolicy = { runCheck: false, requireUid1000: false, python: {}, requirePip: false };

export const SystemSchema = z.object({
  slug: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/),
  displayName: z.string().min(1).max(100),
  description: z.string().max(1000).default(''),
  enabled: z.boolean().default(true),
  /** `docker.io/*`, `registry.example.com/team/*`, or `*` for any. */
  allowedRegistries: z.array(z.string().min(1)).default(['*']),
  /** Mount paths must be under one of these; empty allows any non-system path. */
  mountPrefixes: z.array(z.string().startsWith('/')).default([]),
  defaultMountPath: z.string().startsWith('/'),
  platform: z.string().default('linux/amd64'),
  spawner: z.enum(['docker', 'kubernetes']).default('docker'),
  policy: ImagePolicySchema.default(OPEN_POLICY),
});
export type System = z.infer<typeof SystemSchema>;

/** What the image form and API need to know about systems. */
export interface SystemCatalog {
  /** Systems a user may pick for a new or edited image. */
  listEnabled(): Promise<System[]>;
  /** A system by slug, enabled or not; undefined if unknown. */
  get(slug: string): Promise<System | undefined>;
}

/** A catalog of fixed systems (the default system from configuration). */
export function staticCatalog(systems: System[]): SystemCatalog {
  return {
    listEnabled: async () => systems.filter((s) => s.enabled),
    get: async (slug) => systems.find((s) => s.slug === slug),
  };
}

/** The `*` pattern and `host/path/*` patterns: does `repositoryPath` (registry/repository) match one? */
export function registryAllowed(patterns: readonly string[], registry: string, repository: string): boolean {
  const full = `${registry}/${repository}`;
  return patterns.some((pattern) => {
    if (pattern === '*') return true;
    if (pattern.endsWith('/*')) return full.startsWith(pattern.slice(0, -1));
    return full === pattern || registry === pattern;
  });
}
