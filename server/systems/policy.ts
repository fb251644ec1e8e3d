/** "The same rules": what a check result is valid for. Pure. */
import { createHash } from 'node:crypto';
import { DEFAULT_GID, DEFAULT_UID, type ImagePolicy } from './schema.js';

/** A stable key for "the same policy on the same platform"; a check is valid while its system's key is the same. */
export function policyHash(policy: ImagePolicy, platform: string): string {
  const runsAsDefault = policy.uid === DEFAULT_UID && policy.uidMax === undefined && policy.gid === DEFAULT_GID;
  const canonical = JSON.stringify({
    platform,
    // Named and shaped as before the uid became a setting, so that checks stored then stay valid.
    requireUid1000: policy.requireUser,
    requirePip: policy.requirePip,
    python: { min: policy.python?.min ?? null, max: policy.python?.max ?? null },
    ...(runsAsDefault ? {} : { runAs: [policy.uid, policy.uidMax ?? null, policy.gid] }),
  });
  return createHash('sha256').update(canonical).digest('hex');
}
