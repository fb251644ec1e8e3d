/** The clean-up's rules and the quotas' settings: pure, table-tested. */
import { describe, expect, it } from 'vitest';
import { dataVolumeName, legacyDataVolumeName } from '../../server/launch/volumes.js';
import { distinctBytes, judgeManifests, type ManifestContext } from '../../server/storage/rules.js';
import type { BuiltManifestRow } from '../../server/storage/store.js';
import { judgeVolume, volumeOwner, type VolumeContext } from '../../server/storage/volumeRules.js';
import { storageRules, type StorageDefaults } from '../../server/systems/storage.js';

const DAY = 86_400_000;
const NOW = new Date('2026-12-31T12:00:00Z');
const daysAgo = (n: number) => new Date(NOW.getTime() - n * DAY);
const REPO = 'registry.example.org/built/ada/env';
const digest = (n: number) => `sha256:${String(n).padStart(64, '0')}`;

function manifest(id: number, pushedDaysAgo: number, overrides: Partial<BuiltManifestRow> = {}): BuiltManifestRow {
  return {
    id,
    repository: REPO,
    digest: digest(id),
    owner: 'ada',
    system: 'lab',
    imageId: 1,
    imageName: 'env',
    buildNumber: id,
    pushedAt: daysAgo(pushedDaysAgo),
    imageDeletedAt: null,
    unusedSince: null,
    blobs: null,
    bytes: null,
    lastLaunchedAt: null,
    status: 'kept',
    deleteRun: null,
    deletedAt: null,
    message: null,
    ...overrides,
  };
}

function context(overrides: Partial<ManifestContext> = {}): ManifestContext {
  return {
    now: NOW,
    retentionMs: () => 7 * DAY,
    kept: new Map([[`${REPO}@${digest(3)}`, 'current']]),
    shared: new Set(),
    published: new Set(),
    launched: new Map(),
    ...overrides,
  };
}

describe('judgeManifests', () => {
  // Builds 1, 2, 3 of one image, pushed 30, 10 and 2 days ago; 3 is current; retention 7 days.
  const builds = [manifest(1, 30), manifest(2, 10), manifest(3, 2)];

  it.each([
    ['superseded more than the retention ago: deleted', {}, 1, { keep: false, reason: 'superseded', since: daysAgo(10) }],
    ['superseded within the retention: kept', {}, 2, { keep: true, reason: 'grace' }],
    ['current: kept', {}, 3, { keep: true, reason: 'current' }],
    ['published: kept', { published: new Set([`${REPO}@${digest(1)}`]) }, 1, { keep: true, reason: 'published' }],
    ['a kept revision: kept', { kept: new Map([[`${REPO}@${digest(1)}`, 'revision' as const]]) }, 1, { keep: true, reason: 'revision' }],
    [
      'started within the retention: kept',
      { launched: new Map([[`${REPO}@${digest(1)}`, daysAgo(3)]]) },
      1,
      { keep: true, reason: 'started' },
    ],
    [
      'started before the retention: deleted',
      { launched: new Map([[`${REPO}@${digest(1)}`, daysAgo(8)]]) },
      1,
      { keep: false, reason: 'superseded' },
    ],
  ])('%s', (_name, overrides, id, expected) => {
    const verdicts = judgeManifests(builds, context(overrides));
    expect(verdicts.get(id)).toMatchObject(expected);
  });

  it('keeps build 2 until seven days after build 3 was pushed', () => {
    const verdict = judgeManifests(builds, context()).get(2);
    expect(verdict).toEqual({ keep: true, reason: 'grace', until: new Date(daysAgo(2).getTime() + 7 * DAY) });
  });

  it('deletes the builds of a deleted image after the retention, the current one too', () => {
    const deleted = builds.map((b) => ({ ...b, imageDeletedAt: daysAgo(8) }));
    const verdicts = judgeManifests(deleted, context({ kept: new Map() }));
    expect([...verdicts.values()].map((v) => v.keep)).toEqual([false, false, false]);
    expect(verdicts.get(3)).toMatchObject({ reason: 'image_deleted' });
    const recent = builds.map((b) => ({ ...b, imageDeletedAt: daysAgo(1) }));
    expect(judgeManifests(recent, context({ kept: new Map() })).get(3)).toMatchObject({ keep: true, reason: 'grace' });
  });

  it('keeps the newest build no longer current (an edit) until a run noted since when, then the retention', () => {
    const noted = judgeManifests([manifest(3, 2)], context({ kept: new Map() })).get(3);
    expect(noted).toMatchObject({ keep: true, reason: 'unused' });
    const old = judgeManifests([manifest(3, 20, { unusedSince: daysAgo(8) })], context({ kept: new Map() })).get(3);
    expect(old).toMatchObject({ keep: false, reason: 'unused' });
  });

  it('takes a system retention of 0 days as: at the next run', () => {
    const verdicts = judgeManifests(builds, context({ retentionMs: () => 0 }));
    expect(verdicts.get(2)).toMatchObject({ keep: false });
    expect(verdicts.get(3)).toMatchObject({ keep: true, reason: 'current' });
  });

  it('says nothing of deleted manifests', () => {
    expect(judgeManifests([manifest(1, 30, { status: 'deleted' }), manifest(3, 2)], context()).has(1)).toBe(false);
  });
});

describe('distinctBytes', () => {
  it('counts a blob that several manifests share once', () => {
    expect(
      distinctBytes([
        [
          { digest: 'a', size: 100 },
          { digest: 'b', size: 10 },
        ],
        [
          { digest: 'a', size: 100 },
          { digest: 'c', size: 1 },
        ],
        null,
      ]),
    ).toBe(111);
  });
});

describe('volumes nobody owns', () => {
  const volume = { user: 'ada', system: 'lab', orphanedAt: null, orphanReason: null, keptBy: null, inUse: false };
  const ctx = (overrides: Partial<VolumeContext> = {}): VolumeContext => ({
    now: NOW,
    hubUsers: new Set(['ada']),
    systems: new Set(['lab']),
    requests: new Map(),
    launches: new Map(),
    graceMs: () => 7 * DAY,
    ...overrides,
  });

  it.each([
    ['its user and system exist: owned', {}, {}, { remove: false, reason: 'owned' }],
    [
      'its user is gone since 8 days: removed',
      { hubUsers: new Set<string>() },
      { orphanedAt: daysAgo(8), orphanReason: 'user_removed' as const },
      { remove: true, reason: 'user_removed' },
    ],
    [
      'its user is gone since 1 day: waits',
      { hubUsers: new Set<string>() },
      { orphanedAt: daysAgo(1), orphanReason: 'user_removed' as const },
      { remove: false, reason: 'grace' },
    ],
    ['first seen gone: waits from now', { hubUsers: new Set<string>() }, {}, { remove: false, reason: 'grace', since: NOW }],
    ['the hub did not answer: nothing new', { hubUsers: undefined }, {}, { remove: false, reason: 'owned' }],
    [
      'the hub did not answer: what was known stays',
      { hubUsers: undefined },
      { orphanedAt: daysAgo(8), orphanReason: 'user_removed' as const },
      { remove: true },
    ],
    [
      'its system is gone',
      { systems: new Set<string>() },
      { orphanedAt: daysAgo(9), orphanReason: 'system_removed' as const },
      { remove: true, reason: 'system_removed' },
    ],
    [
      'kept by an admin',
      { hubUsers: new Set<string>() },
      { orphanedAt: daysAgo(30), orphanReason: 'user_removed' as const, keptBy: 'root' },
      { remove: false, reason: 'kept' },
    ],
    [
      'in use by a container',
      { hubUsers: new Set<string>() },
      { orphanedAt: daysAgo(30), orphanReason: 'user_removed' as const, inUse: true },
      { remove: false, reason: 'in_use' },
    ],
    ['its user asked 8 days ago', { requests: new Map([['ada', daysAgo(8)]]) }, {}, { remove: true, reason: 'user_asked' }],
    [
      'its user asked, then started a server there: kept',
      { requests: new Map([['ada', daysAgo(8)]]), launches: new Map([['ada\u0000lab', daysAgo(2)]]) },
      {},
      { remove: false, reason: 'owned' },
    ],
  ])('%s', (_name, overrides, row, expected) => {
    expect(judgeVolume({ ...volume, ...row }, ctx(overrides))).toMatchObject(expected);
  });

  it('knows the service volumes by name and labels, and nothing else', () => {
    const labels = { 'custom-images.user': 'ada', 'custom-images.system': 'lab' };
    expect(volumeOwner(dataVolumeName('ada', 'lab'), labels)).toEqual({ user: 'ada', system: 'lab' });
    expect(volumeOwner(legacyDataVolumeName('ada', 'lab'), { 'custom-images.owner': 'ada', 'custom-images.system': 'lab' })).toEqual({
      user: 'ada',
      system: 'lab',
    });
    // Labels written on a volume of another name (or another user's name) make it nobody's to remove.
    expect(volumeOwner('jupyterhub-user-ada', labels)).toBeUndefined();
    expect(volumeOwner(dataVolumeName('bob', 'lab'), labels)).toBeUndefined();
    expect(volumeOwner(dataVolumeName('ada', 'lab'), { 'custom-images.user': 'ada' })).toBeUndefined();
  });
});

describe('storageRules', () => {
  const defaults: StorageDefaults = {
    userImages: 20,
    userBuilds: 30,
    userRegistryBytes: 50e9,
    buildRetentionDays: 14,
    volumeGraceDays: 30,
  };

  it('takes the defaults for blank settings, and 0 as no limit', () => {
    expect(storageRules(undefined, defaults)).toEqual({
      user: { images: 20, builds: 30, registryBytes: 50e9 },
      system: { images: undefined, builds: undefined, registryBytes: undefined },
      retentionMs: 14 * DAY,
      volumeGraceMs: 30 * DAY,
    });
    const own = storageRules(
      {
        userImages: 0,
        userBuilds: 3,
        userRegistryGb: 1.5,
        systemImages: 100,
        systemBuilds: null,
        systemRegistryGb: 0,
        buildRetentionDays: 0,
        volumeGraceDays: 2,
      },
      defaults,
    );
    expect(own).toEqual({
      user: { images: undefined, builds: 3, registryBytes: 1.5e9 },
      system: { images: 100, builds: undefined, registryBytes: undefined },
      retentionMs: 0,
      volumeGraceMs: 2 * DAY,
    });
  });
});
