/** Clean-up runs as the lifecycle in jobs/ runs them. */
import type { JobKind } from '../jobs/kind.js';

/** What a run cleans: the site registry (once per deployment) or one engine's data volumes. */
export type CleanupKind = 'registry' | 'volumes';

/** How long one run may take; the next one resumes what it left. */
const DEADLINE_MS = 3600_000;

/**
 * Clean-up runs (rows of `cleanup_runs`). Runs of one lane (the registry,
 * or one engine's volumes) take turns; a stopping replica gives its run
 * back, and any replica resumes it: what it was deleting is recorded per
 * manifest and volume, so nothing is removed twice.
 */
export const CLEANUP_JOB: JobKind = {
  what: 'clean-up',
  table: 'cleanup_runs',
  queued: 'queued',
  running: 'running',
  startedColumn: 'started_at',
  oneRunningPer: 'lane',
  requeued: {},
  interrupted: (now) => ({
    status: 'failed',
    finished_at: now,
    message: 'The clean-up was interrupted twice (the service restarted while it ran); the next one resumes it.',
  }),
  maxAttempts: 2,
  progressEveryMs: 1000,
  deadline: {
    ms: DEADLINE_MS,
    exceeded: (now) => ({ status: 'failed', finished_at: now, message: 'The clean-up took longer than an hour; the next one resumes it.' }),
  },
  onStop: 'requeue',
};

/** The lane of a run: runs of one lane never run at once. */
export function laneOf(kind: CleanupKind, engine: string): string {
  return kind === 'registry' ? 'registry' : `volumes:${engine}`;
}
