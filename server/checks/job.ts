/** Check jobs as the lifecycle in jobs/ runs them: where they live and how they end when they cannot run to the end. */
import type { Finding } from '../inspect/analyze.js';
import type { JobKind } from '../jobs/kind.js';

/** What a check that outlived its deadline says. */
export function deadlineFinding(deadlineMs: number): Finding {
  const seconds = Math.round(deadlineMs / 1000);
  const took = seconds >= 120 ? `${Math.round(seconds / 60)} minutes` : `${seconds} seconds`;
  return {
    code: 'check.deadline',
    level: 'error',
    message: `The check took longer than ${took} and was stopped. The registry may be very slow at the moment; try again later.`,
  };
}

/** Check jobs; a stopping replica lets the checks in hand end. */
export const CHECK_JOB: JobKind = {
  what: 'check',
  table: 'checks',
  queued: 'queued',
  running: 'running',
  startedColumn: 'started_at',
  requeued: {},
  interrupted: (now) => ({
    status: 'error',
    finished_at: now,
    findings: JSON.stringify([
      {
        code: 'check.interrupted',
        level: 'error',
        message: 'The check was interrupted (the service restarted while it ran). Press "Check now" to run it again.',
      } satisfies Finding,
    ]),
  }),
  maxAttempts: 2,
  progressEveryMs: 500,
  onStop: 'wait',
};

/** Check jobs with a deadline per attempt (CUSTOM_IMAGES_CHECK_DEADLINE_SECONDS). */
export function checkJobKind(deadlineMs: number): JobKind {
  return {
    ...CHECK_JOB,
    deadline: {
      ms: deadlineMs,
      exceeded: (now) => ({ status: 'error', kind: 'static', finished_at: now, findings: JSON.stringify([deadlineFinding(deadlineMs)]) }),
    },
  };
}
