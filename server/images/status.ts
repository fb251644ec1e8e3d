/**
 * An image's status, in one place: derived from its configuration, its
 * newest check and its newest build. Pure; tiles, the API, the spawn form's
 * filter and shared views all read it from here.
 */
import { isActive, type CheckStatus } from '../checks/status.js';

/** Every status an image has, as tiles, the API and its filter name them. */
export const IMAGE_STATUSES = ['never', 'building', 'build_failed', 'checking', 'passed', 'failed', 'changed'] as const;
export type ImageStatusCode = (typeof IMAGE_STATUSES)[number];

export interface ImageStatus {
  code: ImageStatusCode;
  label: string;
  at: Date | undefined;
  /** The check the status comes from (its page); undefined while the status is a build's. */
  checkId: number | undefined;
  /**
   * Set when its tag moved and the new content waits for its owner (read, or
   * being read, by this candidate check): the tile links to what changed.
   */
  candidateId?: number | undefined;
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

/** What of a build the status needs (builds/store.ts's summary has it). */
export interface BuildSummaryForStatus {
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  /** While running: preparing its context, building, or pushing. */
  phase: 'context' | 'building' | 'pushing' | null;
  step: number;
  steps: number;
  createdAt: Date;
  finishedAt: Date | null;
}

/** Whether a build is waiting or running. */
export function isBuildActive(status: BuildSummaryForStatus['status']): boolean {
  return status === 'queued' || status === 'running';
}

/** What a tile says of a build. */
export function buildLabel(build: Pick<BuildSummaryForStatus, 'status' | 'phase' | 'step' | 'steps'>): string {
  const of = build.steps > 0 ? ` (step ${build.step} of ${build.steps})` : '';
  if (build.status === 'queued') return 'Build queued';
  if (build.status === 'running') {
    if (build.phase === 'pushing') return 'Pushing';
    if (build.phase === 'building') return `Building${of}`;
    return 'Preparing the build';
  }
  if (build.status === 'succeeded') return 'Built';
  return build.step > 0 ? `Build failed at step ${build.step}` : 'Build failed';
}

/**
 * Whether a candidate check (a moved tag's new content, checks/store.ts)
 * waits for the owner: newer than the image's check, and being read, not
 * readable, or of other content than the image runs.
 */
export function candidatePending(check: CheckSummary | undefined, candidate: CheckSummary | undefined): candidate is CheckSummary {
  if (!candidate || (check && candidate.id < check.id)) return false;
  if (isActive(candidate.status) || candidate.status === 'error' || !check) return true;
  return (candidate.manifestDigest ?? candidate.digest) !== (check.manifestDigest ?? check.digest);
}

/**
 * building (a build is queued or running: what it will push is not checked
 * yet), build failed (the image has nothing checked to fall back on), never
 * checked (grey), checking, checked OK (green), check failed (red), or
 * changed since the last check (orange): the image or its system changed,
 * or its tag moved and the new content waits for its owner (`candidate`).
 */
export function imageStatus(
  image: { reference: string; system: string },
  check: CheckSummary | undefined,
  build?: BuildSummaryForStatus,
  candidate?: CheckSummary,
): ImageStatus {
  if (build && isBuildActive(build.status)) return { code: 'building', label: buildLabel(build), at: build.createdAt, checkId: undefined };
  if (!check) {
    if (build?.status === 'failed')
      return { code: 'build_failed', label: buildLabel(build), at: build.finishedAt ?? build.createdAt, checkId: undefined };
    return { code: 'never', label: 'Never checked', at: undefined, checkId: undefined };
  }
  const at = check.finishedAt ?? check.createdAt;
  if (isActive(check.status)) return { code: 'checking', label: 'Checking…', at, checkId: check.id };
  if (check.reference !== image.reference || check.system !== image.system) {
    return { code: 'changed', label: 'Changed since last check', at, checkId: check.id };
  }
  if (candidatePending(check, candidate)) {
    const reading = isActive(candidate.status);
    return {
      code: 'changed',
      label: reading ? 'Its tag moved: reading the new content…' : 'Its tag moved: see what changed',
      at: candidate.finishedAt ?? candidate.createdAt,
      checkId: check.id,
      candidateId: candidate.id,
    };
  }
  if (check.status === 'passed') return { code: 'passed', label: 'Checked OK', at, checkId: check.id };
  return { code: 'failed', label: check.status === 'error' ? 'Check failed (could not check)' : 'Check failed', at, checkId: check.id };
}
