/** Systems as the API answers them, parsed by their schema. */
import { z } from 'zod';
import { BUILD_NETWORKS, DEFAULT_KEPT_REVISIONS, type System } from '../../systems/schema.js';

export const SystemResponseSchema = z.object({
  slug: z.string(),
  displayName: z.string(),
  description: z.string(),
  enabled: z.boolean(),
  allowedRegistries: z.array(z.string()),
  mountPrefixes: z.array(z.string()),
  defaultMountPath: z.string(),
  platform: z.string(),
  spawner: z.enum(['docker', 'kubernetes']),
  policy: z.object({
    runCheck: z.boolean(),
    uid: z.number().int(),
    uidMax: z.number().int().optional(),
    gid: z.number().int(),
    requireUser: z.boolean(),
    requirePip: z.boolean(),
    python: z.object({ min: z.string().optional(), max: z.string().optional() }),
  }),
  build: z.object({
    enabled: z.boolean(),
    pushTo: z.string(),
    network: z.enum(BUILD_NETWORKS),
    baseImages: z.array(z.object({ name: z.string(), image: z.string() })),
    /** The site's package mirrors repository builds use (absent: none). */
    mirrors: z
      .object({
        pipIndexUrl: z.string().optional(),
        pipExtraIndexUrl: z.string().optional(),
        condaChannels: z.array(z.string()).optional(),
        aptSources: z.array(z.string()).optional(),
      })
      .optional(),
  }),
  /** How many revisions each image keeps. */
  keptRevisions: z.number().int(),
});

/** The API's form of a system. */
export function presentSystem(system: System): z.infer<typeof SystemResponseSchema> {
  return SystemResponseSchema.parse({ ...system, keptRevisions: system.keptRevisions ?? DEFAULT_KEPT_REVISIONS });
}
