/** An image's status, derived from its configuration and its newest check. Pure. */
import { isActive, type CheckStatus } from '../checks/store.js';

/** Every status an image has, as tiles, the API and its filter name them. */
export const IMAGE_STATUSES = ['never', 'checking', 'passed', 'failed', 'changed'] as const;
export type ImageStatusCode = (typeof IMAGE_STATUSES)[number];

export interface ImageStatus {
  code: ImageStatusCode;
  label: string;
  at: Date | undefined;
  checkId: number | undefined;
}

/** What of a check the status needs. */
export interface CheckSummary {
  id: number;
  status: CheckStatus;
  reference: string;
  system: string;
  createdAt: Date;
  finishedAt: Date | null;
  digest: string | null;
  /** The platform manifest's digest, what a spawner starts. */
  manifestDigest: string | null;
}

/**
 * never checked (grey), checking, checked OK (green), check failed (red), or
 * changed since the last check (orange): the image or its system changed.
 */
export function imageStatus(image: { reference: string; system: string }, check: CheckSummary | undefined): ImageStatus {
  if (!check) return { code: 'never', label: 'Never checked', at: undefined, checkId: undefined };
  const at = check.finishedAt ?? check.createdAt;
  if (isActive(check.status)) return { code: 'checking', label: 'Checking…', at, checkId: check.id };
  if (check.reference !== image.reference || check.system !== image.system) {
    return { code: 'changed', label: 'Changed since last check', at, checkId: check.id };
  }
  if (check.status === 'passed') return { code: 'passed', label: 'Checked OK', at, checkId: check.id };
  return { code: 'failed', label: check.status === 'error' ? 'Check failed (could not check)' : 'Check failed', at, checkId: check.id };
}
