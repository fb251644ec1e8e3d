/**
 * A system: where custom images are offered and under which rules. Until
 * admins define systems, one default system comes from config.
 */
import { z } from 'zod';
import { StorageSettingsSchema } from './storage.js';

/** The uid and gid notebook servers run as when a system says nothing else. */
export const DEFAULT_UID = 1000;
export const DEFAULT_GID = 100;

/** What an image must satisfy on a system, and who its servers run as; the check fails images that do not fit. */
export const ImagePolicySchema = z.preprocess(
  // Stored policies from before the uid became a setting call "the image must have that user" requireUid1000.
  (raw) => {
    if (!raw || typeof raw !== 'object' || !('requireUid1000' in raw)) return raw;
    const { requireUid1000, ...rest } = raw as Record<string, unknown>;
    return 'requireUser' in rest ? rest : { ...rest, requireUser: requireUid1000 };
  },
  z
    .object({
      /** The image must also pass a run in Docker before it may launch. */
      runCheck: z.boolean().default(false),
      /**
       * The uid servers run as: the system's choice, never the image's, never 0. With
       * `uidMax`, a range: an image whose own user is inside it keeps that uid, others get `uid`.
       */
      uid: z.number().int().min(1).max(2_147_483_646).default(DEFAULT_UID),
      uidMax: z.number().int().min(1).max(2_147_483_646).optional(),
      /** The primary group servers run with (never 0, the root group). */
      gid: z.number().int().min(1).max(2_147_483_646).default(DEFAULT_GID),
      /** The image must have a user with that uid whose home directory it can write. */
      requireUser: z.boolean().default(false),
      /** Python version range, inclusive, as major.minor. */
      python: z
        .object({
          min: z
            .string()
            .regex(/^\d+\.\d+$/, 'a version such as 3.9')
            .optional(),
          max: z
            .string()
            .regex(/^\d+\.\d+$/, 'a version such as 3.12')
            .optional(),
        })
        .default({}),
      requirePip: z.boolean().default(false),
    })
    .refine((p) => p.uidMax === undefined || p.uidMax >= p.uid, {
      message: 'the highest uid must not be below the lowest',
      path: ['uidMax'],
    }),
);
export type ImagePolicy = z.infer<typeof ImagePolicySchema>;

/** The policy with nothing required; servers run as the default uid and gid. */
export const OPEN_POLICY: ImagePolicy = {
  runCheck: false,
  uid: DEFAULT_UID,
  gid: DEFAULT_GID,
  requireUser: false,
  python: {},
  requirePip: false,
};

/** A system's slug: what URLs, seed files and the spawn form name it by. */
export const SLUG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
export const SLUG_RULE = 'letters, digits, ".", "_" and "-", starting with a letter or digit, up to 63 characters';

/** The network of a build's RUN steps: the engine's default, none at all, or the host's. */
export const BUILD_NETWORKS = ['default', 'none', 'host'] as const;
export type BuildNetwork = (typeof BUILD_NETWORKS)[number];

/** Whether and how a system builds images for researchers. */
export const BuildSettingsSchema = z.object({
  enabled: z.boolean().default(false),
  /** A registry path (`registry.example.org/custom-images`): results are pushed as `<pushTo>/<user>/<name>:<build number>`. */
  pushTo: z.string().default(''),
  network: z.enum(BUILD_NETWORKS).default('default'),
  /** The base images offered for "base image + packages". */
  baseImages: z.array(z.object({ name: z.string().min(1).max(100), image: z.string().min(1).max(600) })).default([]),
  /**
   * The git hosts (host[:port], lower case) repositories may come from for
   * builds and launch links; empty: any host the address guard lets through.
   */
  gitHosts: z.array(z.string().min(1).max(300)).optional(),
  /** The site's package mirrors builds use (many sites reach no index but their own): written into repository builds. */
  mirrors: z
    .object({
      pipIndexUrl: z.string().max(2048).optional(),
      pipExtraIndexUrl: z.string().max(2048).optional(),
      condaChannels: z.array(z.string().min(1).max(2048)).max(20).optional(),
      /** `deb …` lines: apt.txt is installed from these alone. */
      aptSources: z.array(z.string().min(1).max(2048)).max(20).optional(),
    })
    .optional(),
});
export type BuildSettings = z.infer<typeof BuildSettingsSchema>;

/**
 * Why building cannot be on without a limit on the processes of build steps:
 * the engine's builder has none of its own, and a RUN step could start
 * processes until the host has none left (the admin form, API and seed say so).
 */
export const BUILDS_NEED_PROCESS_LIMIT =
  'Building cannot be turned on: build steps would have no limit on processes, and one RUN step could start processes until the Docker host has none left. The host admin makes a cgroup with a pids limit and names it in CUSTOM_IMAGES_BUILD_CGROUP_PARENT (README, "Building images"); then building can be turned on.';

/** A system that builds nothing. */
export const NO_BUILDS: BuildSettings = { enabled: false, pushTo: '', network: 'default', baseImages: [] };

/** How many revisions an image keeps when its system says nothing (revisions/). */
export const DEFAULT_KEPT_REVISIONS = 10;
/** The most a system may keep: each kept revision is content its registry must keep too. */
export const MAX_KEPT_REVISIONS = 100;

export const SystemSchema = z.object({
  slug: z.string().regex(SLUG),
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
  build: BuildSettingsSchema.default(NO_BUILDS),
  /** Quotas and retention (systems/storage.ts); absent: the site's defaults. */
  storage: StorageSettingsSchema.optional(),
  /** How many revisions each image keeps (revisions/); unset: the default, 10. */
  keptRevisions: z.number().int().min(1).max(MAX_KEPT_REVISIONS).optional(),
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

/** Whether `host` (host[:port]) may be the source of a repository built on `system`; the message when not. */
export function gitHostProblem(system: System, host: string): string | undefined {
  const allowed = system.build.gitHosts ?? [];
  if (allowed.length === 0 || allowed.includes(host.toLowerCase())) return undefined;
  return `Repositories on ${host} are not allowed on ${system.displayName}; this system builds from ${allowed.join(', ')}`;
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
