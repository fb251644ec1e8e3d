/**
 * Why a build failed, in words a researcher can act on: the step, what the
 * builder said, and what the usual causes of that ending are.
 */
import type { BuildLimits, BuildResult } from './builder.js';
import type { BuildNetwork } from '../systems/schema.js';
import { formatBytes } from '../format.js';

// The ways shells, libc and Python say that a new process or thread was refused (EAGAIN): a limit on processes.
// No word boundaries: processes refused at once write into one another's lines ("Cannot forkCannot fork").
const PROCESS_REFUSED =
  /fork: (retry: )?Resource temporarily unavailable|(cannot|can't) fork|can't start new thread|pthread_create.*(Resource temporarily unavailable|EAGAIN)|\bBlockingIOError: \[Errno 11\]/i;

/** Why `result` failed; `pastDeadline`: the build was stopped at its time limit. */
export function buildFailureMessage(
  result: Extract<BuildResult, { ok: false }>,
  pastDeadline: boolean,
  network: BuildNetwork,
  limits: Pick<BuildLimits, 'timeoutMs' | 'memoryBytes' | 'diskBytes' | 'imageBytes'>,
): string {
  const at = result.step > 0 ? ` at step ${result.step} of ${result.steps} (${result.instruction})` : '';
  if (result.tooLarge?.what === 'disk') {
    return `The build wrote more than the ${formatBytes(limits.diskBytes)} a build may write to the engine's disk (${formatBytes(result.tooLarge.bytes)} when it was measured) and was stopped${at}; what it wrote was removed. Remove downloads and caches in the RUN step that makes them, or ask the hub admin for a larger limit.`;
  }
  if (result.tooLarge?.what === 'image') {
    return `The built image is ${formatBytes(result.tooLarge.bytes)}, more than the ${formatBytes(limits.imageBytes)} an image built here may have (its base image included); it was not pushed, and its layers were removed. Install less, or remove downloads and caches in the RUN step that makes them.`;
  }
  if (pastDeadline) {
    const ms = limits.timeoutMs;
    const limit = ms >= 120_000 ? `${Math.round(ms / 60_000)} minutes` : `${Math.round(ms / 1000)} s`;
    return `The build took longer than ${limit} and was stopped${at}. Build fewer packages at once, or ask the hub admin for a longer time limit.`;
  }
  const run = /^RUN\b/i.test(result.instruction);
  let advice = '';
  if (run && /non-zero code: 137$/.test(result.reason.replace(/\.$/, '').trim())) {
    // 137 is 128 + SIGKILL: what the kernel's out-of-memory killer sends inside the step's memory limit.
    advice = ` The step was killed, most likely for using more than the ${Math.round(limits.memoryBytes / 1024 / 1024)} MiB of memory a build step has. Install fewer packages at once, or build with fewer parallel jobs.`;
  } else if (run && PROCESS_REFUSED.test(result.stepOutput)) {
    advice = ' The step started more processes than a build step may run at once. Build with fewer parallel jobs (for example make -j2).';
  } else if (run && network === 'none') {
    advice =
      ' This system builds without a network: RUN steps cannot download anything. Put what they need in the build context (uploaded files or a git repository).';
  }
  return `Build failed${at}: ${result.reason.replace(/\.$/, '')}.${advice}`;
}
