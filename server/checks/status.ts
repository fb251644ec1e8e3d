/** The statuses of a check, pure: what images/ and web/ read of a check without its store. */

/** Every status a check has: queued and running while it is active, then one of the three results. */
export const CHECK_STATUSES = ['queued', 'running', 'passed', 'failed', 'error'] as const;
export type CheckStatus = (typeof CHECK_STATUSES)[number];

/** The statuses of a check that has not ended yet. */
const ACTIVE_STATUSES: readonly CheckStatus[] = ['queued', 'running'];

/** A check that has not ended yet. */
export function isActive(status: CheckStatus): boolean {
  return ACTIVE_STATUSES.includes(status);
}
