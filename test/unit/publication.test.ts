/**
 * A publication serves the digest the admin published, and only while the
 * image is checked at it: every way an owner can move the image (an edit,
 * a rebuild, a new check at other content, a failed check) withdraws it,
 * with the words pages and refusals show.
 */
import { describe, expect, it } from 'vitest';
import type { CheckSummary } from '../../server/images/status.js';
import type { ImageRow } from '../../server/images/store.js';
import { publicationState } from '../../server/sharing/publication.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const at = new Date('2026-12-06T10:00:00Z');

function image(overrides: Partial<ImageRow> = {}): ImageRow {
  return {
    id: 1,
    owner: 'dan',
    name: 'env',
    description: '',
    system: 'dock',
    referenceInput: 'reg.example.org/built/dan/env:1@' + D1,
    reference: 'reg.example.org/built/dan/env:1@' + D1,
    registry: 'reg.example.org',
    mountPath: null,
    published: { at, by: 'admin', description: 'Course', digest: D1 },
    launchesByOthers: 0,
    createdAt: at,
    updatedAt: at,
    ...overrides,
  };
}

function check(overrides: Partial<CheckSummary> = {}): CheckSummary {
  return {
    id: 7,
    status: 'passed',
    reference: image().reference,
    system: 'dock',
    createdAt: at,
    finishedAt: at,
    digest: D1,
    manifestDigest: D1,
    ...overrides,
  };
}

describe('the state of a publication', () => {
  it('serves while the newest check passed at the published digest (the platform manifest\u2019s)', () => {
    expect(publicationState(image(), check())).toEqual({ serving: true });
    expect(publicationState(image(), check({ digest: D2, manifestDigest: D1 }))).toEqual({ serving: true });
  });

  it('is none for an image that is not published', () => {
    expect(publicationState(image({ published: null }), check())).toBeUndefined();
  });

  it.each([
    [
      'a rebuild (the image names the new build)',
      image({ reference: `reg.example.org/built/dan/env:2@${D2}` }),
      check(),
      /dan changed it after it was published \(it is now reg\.example\.org\/built\/dan\/env:2@/,
    ],
    ['an edit to another image', image({ reference: 'reg.example.org/lab/other:1' }), check(), /dan changed it after it was published/],
    ['a move to another system', image({ system: 'kube' }), check(), /dan changed it after it was published/],
    [
      'a new check at other content (a moved tag)',
      image(),
      check({ digest: D2, manifestDigest: D2 }),
      new RegExp(`it is now ${D2}, not the published ${D1}`),
    ],
    [
      'a check running again',
      image(),
      check({ status: 'running', finishedAt: null, digest: null, manifestDigest: null }),
      /dan is checking it again/,
    ],
    ['a failed check', image(), check({ status: 'failed' }), /its newest check failed/],
    ['no check at all', image(), undefined, /dan changed it after it was published/],
    [
      'a publication from before digests were recorded',
      image({ published: { at, by: 'admin', description: '', digest: null } }),
      check(),
      /published before publications named a digest/,
    ],
  ] as const)('is withdrawn after %s', (_, img, newest, why) => {
    const state = publicationState(img, newest);
    expect(state?.serving).toBe(false);
    expect(state && !state.serving ? state.why : '').toMatch(why);
  });
});
