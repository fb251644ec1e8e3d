/** Pulls into an engine as the lifecycle in jobs/ runs them. */
import type { JobKind } from '../jobs/kind.js';
import { pullTooSlow } from '../runner/engine.js';

/** Pull jobs (rows of engine_images), with the pull timeout as their deadline; a stopping replica lets them end. */
export function pullJobKind(timeoutMs: number): JobKind {
  return {
    what: 'pull',
    table: 'engine_images',
    queued: 'queued',
    running: 'pulling',
    requeued: { current_bytes: 0, total_bytes: 0, fraction: 0 },
    interrupted: (now) => ({
      status: 'failed',
      finished_at: now,
      message: 'The pull was interrupted (the service restarted while it ran).',
    }),
    maxAttempts: 2,
    progressEveryMs: 500,
    deadline: {
      ms: timeoutMs,
      exceeded: (now) => ({ status: 'failed', finished_at: now, message: pullTooSlow('the image', timeoutMs) }),
    },
    onStop: 'wait',
  };
}
