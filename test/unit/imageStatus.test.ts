import { describe, expect, it } from 'vitest';
import { imageStatus, type BuildSummaryForStatus, type CheckSummary } from '../../server/images/status.js';

const image = { reference: 'registry.example.org/lab/env:1', system: 'hpc' };
const at = new Date('2026-12-01T10:00:00Z');
const check = (status: CheckSummary['status'], changes: Partial<CheckSummary> = {}): CheckSummary => ({
  id: 7,
  status,
  reference: image.reference,
  system: image.system,
  createdAt: at,
  finishedAt: status === 'queued' || status === 'running' ? null : at,
  digest: null,
  manifestDigest: null,
  ...changes,
});
const build = (status: BuildSummaryForStatus['status'], changes: Partial<BuildSummaryForStatus> = {}): BuildSummaryForStatus => ({
  status,
  phase: status === 'running' ? 'building' : null,
  step: 2,
  steps: 5,
  createdAt: at,
  finishedAt: status === 'queued' || status === 'running' ? null : at,
  ...changes,
});

describe('the status of an image, from its configuration, newest check and newest build', () => {
  it.each<[string, CheckSummary | undefined, BuildSummaryForStatus | undefined, string, string]>([
    ['never checked', undefined, undefined, 'never', 'Never checked'],
    ['a check waiting', check('queued'), undefined, 'checking', 'Checking…'],
    ['checked OK', check('passed'), undefined, 'passed', 'Checked OK'],
    ['a failed check', check('failed'), undefined, 'failed', 'Check failed'],
    ['a check that could not be made', check('error'), undefined, 'failed', 'Check failed (could not check)'],
    [
      'an edit since the check',
      check('passed', { reference: 'registry.example.org/lab/env:2' }),
      undefined,
      'changed',
      'Changed since last check',
    ],
    ['a move to another system', check('passed', { system: 'cloud' }), undefined, 'changed', 'Changed since last check'],
    ['a first build waiting', undefined, build('queued'), 'building', 'Build queued'],
    ['a first build running', undefined, build('running'), 'building', 'Building (step 2 of 5)'],
    ['a first build pushing', undefined, build('running', { phase: 'pushing' }), 'building', 'Pushing'],
    ['a rebuild of an image checked OK', check('passed'), build('running'), 'building', 'Building (step 2 of 5)'],
    ['a first build that failed', undefined, build('failed'), 'build_failed', 'Build failed at step 2'],
    ['a failed rebuild of an image checked OK: the checked image stands', check('passed'), build('failed'), 'passed', 'Checked OK'],
    ['a build that succeeded, its check not queued yet', undefined, build('succeeded'), 'never', 'Never checked'],
    ['a built image being checked', check('running'), build('succeeded'), 'checking', 'Checking…'],
  ])('%s', (_case, latestCheck, latestBuild, code, label) => {
    expect(imageStatus(image, latestCheck, latestBuild)).toMatchObject({ code, label });
  });

  it('links a status to its check, never to a build', () => {
    expect(imageStatus(image, check('passed')).checkId).toBe(7);
    expect(imageStatus(image, check('passed'), build('running')).checkId).toBeUndefined();
  });
});
