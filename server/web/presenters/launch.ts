/**
 * The launch answer, what the spawner hook reads at every Start: parsed by
 * its schema like every answer (zod compiles it; a parse costs about a
 * microsecond, npm run bench's launch API section measures the route).
 */
import { z } from 'zod';
import type { LaunchParams } from '../../launch/service.js';

export const LaunchResponseSchema = z.object({
  image: z.string(),
  /** Whose image it is, and whose server starts: the same user unless the image is shared or published. */
  owner: z.string(),
  user: z.string(),
  digest: z.string(),
  system: z.string(),
  spawner: z.enum(['docker', 'kubernetes']),
  mount: z.object({ volume: z.string(), target: z.string() }),
  /** The system's uid and gid: never the image's choice, never 0. */
  uid: z.number().int().positive(),
  gid: z.number().int().positive(),
  env: z.record(z.string(), z.string()),
  pull: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('kubernetes'), dockerconfigjson: z.string().nullable() }),
    z.object({ kind: z.literal('docker'), pulled: z.boolean() }),
  ]),
  check: z.object({ id: z.number().int(), kind: z.enum(['static', 'full']), finishedAt: z.string().nullable() }),
});

export type LaunchResponse = z.infer<typeof LaunchResponseSchema>;

/** The launch parameters as the API answers them. */
export function presentLaunch(params: LaunchParams): LaunchResponse {
  return LaunchResponseSchema.parse(params);
}

// The service's type and the answer's schema say the same, or this does not compile.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const launchTypesAgree: Same<LaunchParams, LaunchResponse> = true;
void launchTypesAgree;
