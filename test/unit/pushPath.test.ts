/**
 * Where built images are pushed, and whose they are: the user's path
 * component is one-to-one (a table of names that shared one before, pairs
 * that differ in case or punctuation, and a property check over random
 * names), always a valid component within distribution's 255 characters;
 * and a reference under a push path is the image of the user whose builds
 * went there, or whose component it is.
 */
import { describe, expect, it } from 'vitest';
import {
  legacyUserPathComponent,
  ownsBuiltImage,
  parsePushPath,
  PUSH_PATH_MAX_LENGTH,
  underPushPath,
  USER_COMPONENT_MAX_LENGTH,
  userOfPathComponent,
  userPathComponent,
  type PushPath,
} from '../../server/systems/pushPath.js';
import { parseReference } from '../../server/registry/reference.js';

/** distribution/reference's path component. */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Pairs of hub names that shared one component before. */
const COLLIDED: Array<[string, string]> = [
  ['alice.smith', 'alice-smith-634258'],
  ['Ada', 'ada-99a563'],
  ['ADA', 'ada-8a15fe'],
  ['a_b', 'a-b-648fa9'],
  ['日本', 'user-cf2abf'],
];

/** Pairs that differ only in case or punctuation. */
const LOOKALIKES: Array<[string, string]> = [
  ['ada', 'Ada'],
  ['ada', 'ADA'],
  ['a-b', 'a_b'],
  ['a-b', 'a.b'],
  ['a-b', 'a--b'],
  ['a.b', 'a_b'],
  ['ada@example.org', 'ada.example.org'],
  ['ada', 'ada '],
  ['ada', '-ada'],
  ['x'.repeat(60) + '@example.org', 'x'.repeat(60) + '@example.com'],
  ['é', 'e'],
];

function validIn(component: string): void {
  expect(component).toMatch(COMPONENT);
  expect(component.length).toBeLessThanOrEqual(USER_COMPONENT_MAX_LENGTH);
  // With the longest push path and build name, the whole name is still a reference.
  const pushTo = `registry.example.org/${'p'.repeat(PUSH_PATH_MAX_LENGTH - 'registry.example.org/'.length)}`;
  expect(() => parseReference(`${pushTo}/${component}/${'n'.repeat(64)}:1`)).not.toThrow();
}

describe('the user path component', () => {
  it.each(COLLIDED)('tells apart %j and %j, which shared one before', (a, b) => {
    expect(legacyUserPathComponent(a)).toBe(legacyUserPathComponent(b));
    expect(userPathComponent(a)).not.toBe(userPathComponent(b));
    validIn(userPathComponent(a));
    validIn(userPathComponent(b));
  });

  it.each(LOOKALIKES)('tells apart %j and %j', (a, b) => {
    expect(userPathComponent(a)).not.toBe(userPathComponent(b));
  });

  it.each([
    ['ada', 'ada'],
    ['ada-lovelace', 'ada-lovelace'],
    ['alice.smith', 'alice-smith__mfwgsy3ffzzw22luna'],
    ['Ada.Lovelace@example.org', expect.stringMatching(/^ada-lovelace-example__[a-z2-7]+$/)],
  ])('keeps plain names as they are and encodes the rest readably: %j', (name, component) => {
    expect(userPathComponent(name)).toEqual(component);
  });

  it('is one-to-one and valid over random names (a property check, seeded)', () => {
    // mulberry32: the same names at every run.
    let seed = 22;
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    };
    const alphabet = ['a', 'b', 'z', '0', '9', 'A', 'Z', '.', '_', '-', '@', ' ', 'é', '日', '😀', '/', '+'];
    const byComponent = new Map<string, string>();
    for (let i = 0; i < 20_000; i++) {
      const length = 1 + Math.floor(random() * (random() < 0.9 ? 12 : 120));
      const name = Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      const component = userPathComponent(name);
      const before = byComponent.get(component);
      if (before !== undefined) expect(before).toBe(name);
      byComponent.set(component, name);
      expect(component).toMatch(COMPONENT);
      expect(component.length).toBeLessThanOrEqual(USER_COMPONENT_MAX_LENGTH);
      // Readable ones say whose they are.
      const decoded = userOfPathComponent(component);
      if (decoded !== undefined) expect(decoded).toBe(name);
      else expect(component).toContain('.');
    }
    expect(byComponent.size).toBeGreaterThan(15_000);
  });
});

describe('whose image a reference under a push path is', () => {
  const paths = ['reg.example.org/ci', 'reg.example.org/ci/team', 'other.example.org/built'].map((p) => parsePushPath(p) as PushPath);
  const under = (image: string) => underPushPath(parseReference(image), paths);

  it.each([
    ['reg.example.org/ci/ada/env:1', 'ada', [], true],
    ['reg.example.org/ci/ada/env:1', 'bob', [], false],
    ['reg.example.org/ci/ada/env@sha256:' + 'a'.repeat(64), 'ada', [], true],
    ['reg.example.org/ci/ada/deep/env:1', 'ada', [], true],
    // The repository is the push path itself, or a path no build makes.
    ['reg.example.org/ci/ada:1', 'ada', [], false],
    // The longest push path decides.
    ['reg.example.org/ci/team/ada/env:1', 'ada', [], true],
    ['reg.example.org/ci/team/ada/env:1', 'team', [], false],
    // Who pushed it owns it: an image built under an earlier component stays its owner's, and only theirs.
    ['reg.example.org/ci/alice-smith-634258/env:1', 'alice.smith', ['alice.smith'], true],
    ['reg.example.org/ci/alice-smith-634258/env:1', 'alice-smith-634258', ['alice.smith'], false],
    ['reg.example.org/ci/ada/env:1', 'ada', ['eve'], false],
  ] as const)('%s for %s (pushed by %j): %s', (image, user, pushedBy, owns) => {
    const found = under(image);
    expect(found).toBeDefined();
    expect(ownsBuiltImage(found!, user, pushedBy)).toBe(owns);
  });

  it.each(['reg.example.org/cix/ada/env:1', 'reg.example.org/other/ada/env:1', 'other.example.org/ada/env:1', 'docker.io/ci/ada/env:1'])(
    'leaves %s alone: under no push path',
    (image) => {
      expect(under(image)).toBeUndefined();
    },
  );
});
