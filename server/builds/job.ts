/** Build jobs as the lifecycle in jobs/ runs them. */
import type { JobKind } from '../jobs/kind.js';

/**
 * Build jobs. A stopping replica stops its builds and queues them again: a
 * new attempt builds from the start on any replica.
 */
export const BUILD_JOB: JobKind = {
  what: 'build',
  table: 'builds',
  queued: 'queued',
  running: 'running',
  startedColumn: 'started_at',
  // A build's layers carry its image's label (builds/layerLabel.ts): a second build of the image would take them for its own.
  oneRunningPer: 'image_id',
  requeued: { phase: null, step: 0, steps: 0 },
  interrupted: (now) => ({
    status: 'failed',
    phase: null,
    finished_at: now,
    message: 'The build was interrupted twice (the service restarted while it ran). Start it again with Rebuild.',
  }),
  maxAttempts: 2,
  progressEveryMs: 500,
  onStop: 'requeue',
};

/** Build jobs with the build's time limit (CUSTOM_IMAGES_BUILD_TIMEOUT_SECONDS) as their deadline. */
export function buildJobKind(timeoutMs: number): JobKind {
  return {
    ...BUILD_JOB,
    deadline: {
      ms: timeoutMs,
      exceeded: (now) => ({
        status: 'failed',
        phase: null,
        finished_at: now,
        message: `The build took longer than its time limit (${Math.round(timeoutMs / 1000)} s) and was stopped.`,
      }),
    },
  };
}
