import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { policyHash } from '../../server/systems/policy.js';
import { imageUid, runAsFor } from '../../server/systems/runAs.js';
import { ImagePolicySchema, OPEN_POLICY } from '../../server/systems/schema.js';
import { SystemInputSchema } from '../../server/systems/service.js';

const users = [
  { name: 'root', uid: 0 },
  { name: 'jovyan', uid: 1000 },
  { name: 'lab', uid: 1500 },
];

describe('the uid the image would choose', () => {
  it.each([
    ['', 0],
    ['root', 0],
    ['0', 0],
    ['0:0', 0],
    ['jovyan', 1000],
    ['jovyan:users', 1000],
    ['1500', 1500],
    ['nobody-here', undefined],
  ])('USER %j -> %s', (configUser, uid) => {
    expect(imageUid({ configUser, users })).toBe(uid);
  });
});

describe('the uid a server runs as: always the system’s', () => {
  it.each([
    ['a root image on a uid-1000 system', { uid: 1000, gid: 100 }, '', { uid: 1000, gid: 100 }],
    ['an image naming another person’s uid', { uid: 1000, gid: 100 }, '1500', { uid: 1000, gid: 100 }],
    ['an image whose user is in the range', { uid: 1000, uidMax: 1999, gid: 100 }, 'lab', { uid: 1500, gid: 100 }],
    ['a root image on a range', { uid: 1000, uidMax: 1999, gid: 100 }, 'root', { uid: 1000, gid: 100 }],
    ['an image above the range', { uid: 1000, uidMax: 1499, gid: 100 }, 'lab', { uid: 1000, gid: 100 }],
    ['an image with an unknown user', { uid: 1000, uidMax: 1999, gid: 100 }, 'ghost', { uid: 1000, gid: 100 }],
  ])('%s', (_name, policy, configUser, expected) => {
    expect(runAsFor(policy, { configUser, users })).toEqual(expected);
  });

  it('is the system’s uid when nothing is known of the image', () => {
    expect(runAsFor({ uid: 1234, gid: 55 }, undefined)).toEqual({ uid: 1234, gid: 55 });
  });
});

describe('the run-as policy', () => {
  it('refuses 0 for uid and gid, and a range that ends below its start', () => {
    for (const bad of [{ uid: 0 }, { gid: 0 }, { uid: 2000, uidMax: 1000 }]) expect(ImagePolicySchema.safeParse(bad).success).toBe(false);
  });

  it('reads a stored policy from before the uid was a setting', () => {
    expect(ImagePolicySchema.parse({ runCheck: false, requireUid1000: true, requirePip: false, python: {} })).toMatchObject({
      uid: 1000,
      gid: 100,
      requireUser: true,
    });
  });

  it('hashes the default uid as before, so that checks stored then stay valid, and another uid differently', () => {
    const before = createHash('sha256')
      .update(JSON.stringify({ platform: 'linux/amd64', requireUid1000: false, requirePip: false, python: { min: null, max: null } }))
      .digest('hex');
    expect(policyHash(OPEN_POLICY, 'linux/amd64')).toBe(before);
    expect(policyHash({ ...OPEN_POLICY, uid: 1001 }, 'linux/amd64')).not.toBe(before);
    expect(policyHash({ ...OPEN_POLICY, uidMax: 1999 }, 'linux/amd64')).not.toBe(before);
  });

  const system = { slug: 'x', displayName: 'X', allowedRegistries: '*', defaultMountPath: '/home/jovyan/work' };
  it.each([
    [{ uid: '0' }, 'uid', /never allowed/],
    [{ uid: 'root' }, 'uid', /whole number/],
    [{ gid: '0' }, 'gid', /root group/],
    [{ uid: '1000', uidMax: '999' }, 'uidMax', /at least the uid \(1000\)/],
  ])('the admin form refuses %j in %s', (fields, field, message) => {
    const result = SystemInputSchema.safeParse({ ...system, ...fields });
    expect(result.success).toBe(false);
    expect(result.error?.issues.find((i) => i.path[0] === field)?.message).toMatch(message);
  });

  it('the admin form takes a uid range and a gid', () => {
    expect(SystemInputSchema.parse({ ...system, uid: '2000', uidMax: '2999', gid: '2000', requireUser: 'on' }).policy).toMatchObject({
      uid: 2000,
      uidMax: 2999,
      gid: 2000,
      requireUser: true,
    });
    expect(SystemInputSchema.parse(system).policy).toMatchObject({ uid: 1000, gid: 100, requireUser: false });
  });
});
