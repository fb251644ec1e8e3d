/**
 * A launch through a link, as the progress page and the API show it: the
 * steps it goes through, and where it lands.
 */

export const LAUNCH_STEPS = ['building', 'checking', 'stopping', 'starting', 'ready', 'failed'] as const;
export type LaunchStep = (typeof LAUNCH_STEPS)[number];

/** A launch in progress (or ended), as the progress page and the API show it. */
export interface LaunchView {
  step: LaunchStep;
  /** Why it failed, in words; null otherwise. */
  message: string | null;
  repo: string;
  commit: string;
  system: string;
  imageId: number;
  imageName: string;
  /** The build this launch waits for; null when the commit was built already. */
  buildNumber: number | null;
  landing: string;
  startedAt: Date;
}

/** Whether a launch is over (its page stops following it). */
export function launchEnded(step: LaunchStep): boolean {
  return step === 'ready' || step === 'failed';
}
