/**
 * The reference parser held against Docker's own tables: normalize_test.go
 * and reference_test.go of github.com/distribution/reference (the grammar
 * Docker and the registries use), as ParseNormalizedNamed reads them. Where
 * we differ on purpose, the case says so and why, and the README lists it.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseReference } from '../../server/registry/reference.js';

const SHA256 = `sha256:${'f'.repeat(64)}`;
const SHA512 = `sha512:${'f'.repeat(128)}`;
const HEX64 = '1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a';

/** What Docker's ParseNormalizedNamed makes of an input: registry (domain), repository (path), tag, digest. */
type Parsed = { registry: string; repository: string; tag?: string; digest?: string };

/** normalize_test.go, TestValidateReferenceName and TestValidateRemoteName. */
const DOCKER_VALID = [
  'docker/docker',
  'library/debian',
  'debian',
  'docker.io/docker/docker',
  'docker.io/library/debian',
  'docker.io/debian',
  'index.docker.io/docker/docker',
  'index.docker.io/library/debian',
  'index.docker.io/debian',
  '127.0.0.1:5000/docker/docker',
  '127.0.0.1:5000/library/debian',
  '127.0.0.1:5000/debian',
  '192.168.0.1',
  '192.168.0.1:80',
  '192.168.0.1:8/debian',
  '192.168.0.2:25000/debian',
  'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
  '[fc00::1]:5000/docker',
  '[fc00::1]:5000/docker/docker',
  '[fc00:1:2:3:4:5:6:7]:5000/library/debian',
  `docker.io/${HEX64}`,
  'docker-rules/docker',
  'docker---rules/docker',
  'doc/docker',
  'd/docker',
  'jess/t',
  'dock__er/docker',
];

const DOCKER_INVALID = [
  'docker/Docker',
  '-docker',
  '-docker/docker',
  '-docker.io/docker/docker',
  'docker///docker',
  'docker.io/docker/Docker',
  'docker.io/docker///docker',
  '[fc00::1]',
  '[fc00::1]:5000',
  'fc00::1:5000/debian',
  '[fe80::1%eth0]:5000/debian',
  '[2001:db8:3:4::192.0.2.33]:5000/debian',
  HEX64,
  'docker-/docker',
  '-docker-/docker',
  '____/____',
  '_docker/_docker',
  'dock..er/docker',
  'dock_.er/docker',
  'dock-.er/docker',
  'docker/',
  `${'this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_'.repeat(4)}/docker`,
];

/** Docker accepts these; we refuse them on purpose (see the README). */
const WE_REFUSE: Array<[string, string]> = [
  ['Docker/docker', 'a capitalised first component is a host to Docker; to us a repository part that must be lowercase'],
  ['DOCKER/docker', 'as above'],
  ['Foo/bar', 'as above (TestParseRepositoryInfo)'],
];

/** Docker refuses these; we accept them on purpose (see the README). */
const WE_ACCEPT: Array<[string, Parsed, string]> = [
  [
    'https://github.com/docker/docker',
    { registry: 'github.com', repository: 'docker/docker', tag: 'latest' },
    'people paste registry URLs; a leading https:// is stripped',
  ],
];

/** normalize_test.go, TestParseRepositoryInfo: every spelling of a name, and the name it is. */
const REPOSITORY_INFO: Array<[string[], string, string]> = [
  [['fooo/bar', 'docker.io/fooo/bar', 'index.docker.io/fooo/bar'], 'docker.io', 'fooo/bar'],
  [['ubuntu', 'docker.io/library/ubuntu', 'library/ubuntu'], 'docker.io', 'library/ubuntu'],
  [['nonlibrary/ubuntu', 'docker.io/nonlibrary/ubuntu'], 'docker.io', 'nonlibrary/ubuntu'],
  [['other/library', 'docker.io/other/library'], 'docker.io', 'other/library'],
  [['127.0.0.1:8000/private/moonbase'], '127.0.0.1:8000', 'private/moonbase'],
  [['127.0.0.1:8000/privatebase'], '127.0.0.1:8000', 'privatebase'],
  [['example.com/private/moonbase'], 'example.com', 'private/moonbase'],
  [['example.com/privatebase'], 'example.com', 'privatebase'],
  [['example.com:8000/private/moonbase'], 'example.com:8000', 'private/moonbase'],
  [['example.com:8000/privatebasee'], 'example.com:8000', 'privatebasee'],
  [
    ['ubuntu-12.04-base', 'docker.io/library/ubuntu-12.04-base', 'index.docker.io/library/ubuntu-12.04-base'],
    'docker.io',
    'library/ubuntu-12.04-base',
  ],
  [['foo', 'docker.io/library/foo', 'docker.io/foo'], 'docker.io', 'library/foo'],
  [['library/foo/bar', 'docker.io/library/foo/bar'], 'docker.io', 'library/foo/bar'],
  [['store/foo/bar', 'docker.io/store/foo/bar'], 'docker.io', 'store/foo/bar'],
];

/** reference_test.go, TestReferenceParse, as ParseNormalizedNamed reads each input (undefined: an error). */
const REFERENCES: Array<[string, Parsed | undefined]> = [
  ['test_com', { registry: 'docker.io', repository: 'library/test_com' }],
  ['test.com:tag', { registry: 'docker.io', repository: 'library/test.com', tag: 'tag' }],
  ['test.com:5000', { registry: 'docker.io', repository: 'library/test.com', tag: '5000' }],
  ['test.com/repo:tag', { registry: 'test.com', repository: 'repo', tag: 'tag' }],
  ['test:5000/repo', { registry: 'test:5000', repository: 'repo' }],
  ['test:5000/repo:tag', { registry: 'test:5000', repository: 'repo', tag: 'tag' }],
  [`test:5000/repo@${SHA256}`, { registry: 'test:5000', repository: 'repo', digest: SHA256 }],
  [`test:5000/repo:tag@${SHA256}`, { registry: 'test:5000', repository: 'repo', tag: 'tag', digest: SHA256 }],
  ['', undefined],
  [':justtag', undefined],
  [`@${SHA256}`, undefined],
  ['repo@sha256:ffffffffffffffffffffffffffffffffff', undefined],
  [`validname@invaliddigest:${'f'.repeat(64)}`, undefined],
  ['Uppercase:tag', undefined],
  ['test:5000/Uppercase/lowercase:tag', undefined],
  ['lowercase:Uppercase', { registry: 'docker.io', repository: 'library/lowercase', tag: 'Uppercase' }],
  [`${'a/'.repeat(128)}a:tag`, undefined],
  // 255 characters as written; docker.io/ in front makes the normalised name too long.
  [`${'a/'.repeat(127)}a:tag-puts-this-over-max`, undefined],
  ['aa/asdf$$^/aa', undefined],
  ['sub-dom1.foo.com/bar/baz/quux', { registry: 'sub-dom1.foo.com', repository: 'bar/baz/quux' }],
  ['sub-dom1.foo.com/bar/baz/quux:some-long-tag', { registry: 'sub-dom1.foo.com', repository: 'bar/baz/quux', tag: 'some-long-tag' }],
  [
    'b.gcr.io/test.example.com/my-app:test.example.com',
    { registry: 'b.gcr.io', repository: 'test.example.com/my-app', tag: 'test.example.com' },
  ],
  ['xn--n3h.com/myimage:xn--n3h.com', { registry: 'xn--n3h.com', repository: 'myimage', tag: 'xn--n3h.com' }],
  [`xn--7o8h.com/myimage:xn--7o8h.com@${SHA512}`, { registry: 'xn--7o8h.com', repository: 'myimage', tag: 'xn--7o8h.com', digest: SHA512 }],
  ['foo_bar.com:8080', { registry: 'docker.io', repository: 'library/foo_bar.com', tag: '8080' }],
  ['foo/foo_bar.com:8080', { registry: 'docker.io', repository: 'foo/foo_bar.com', tag: '8080' }],
  ['192.168.1.1', { registry: 'docker.io', repository: 'library/192.168.1.1' }],
  ['192.168.1.1:tag', { registry: 'docker.io', repository: 'library/192.168.1.1', tag: 'tag' }],
  ['192.168.1.1:5000', { registry: 'docker.io', repository: 'library/192.168.1.1', tag: '5000' }],
  ['192.168.1.1/repo', { registry: '192.168.1.1', repository: 'repo' }],
  ['192.168.1.1:5000/repo', { registry: '192.168.1.1:5000', repository: 'repo' }],
  ['192.168.1.1:5000/repo:5050', { registry: '192.168.1.1:5000', repository: 'repo', tag: '5050' }],
  ['[2001:db8::1]', undefined],
  ['[2001:db8::1]:5000', undefined],
  ['[2001:db8::1]:tag', undefined],
  ['[2001:db8::1]/repo', { registry: '[2001:db8::1]', repository: 'repo' }],
  ['[2001:db8:1:2:3:4:5:6]/repo:tag', { registry: '[2001:db8:1:2:3:4:5:6]', repository: 'repo', tag: 'tag' }],
  ['[2001:db8::1]:5000/repo', { registry: '[2001:db8::1]:5000', repository: 'repo' }],
  ['[2001:db8::1]:5000/repo:tag', { registry: '[2001:db8::1]:5000', repository: 'repo', tag: 'tag' }],
  [`[2001:db8::1]:5000/repo@${SHA256}`, { registry: '[2001:db8::1]:5000', repository: 'repo', digest: SHA256 }],
  [`[2001:db8::1]:5000/repo:tag@${SHA256}`, { registry: '[2001:db8::1]:5000', repository: 'repo', tag: 'tag', digest: SHA256 }],
  ['[2001:db8::]:5000/repo', { registry: '[2001:db8::]:5000', repository: 'repo' }],
  ['[::1]:5000/repo', { registry: '[::1]:5000', repository: 'repo' }],
  ['[fe80::1%eth0]:5000/repo', undefined],
  ['[fe80::1%@invalidzone]:5000/repo', undefined],
];

/** Our answer in Docker's terms; we add the tag latest where neither tag nor digest was given, as Docker's pull does. */
function ours(input: string): Parsed | undefined {
  try {
    const ref = parseReference(input);
    return {
      registry: ref.registry,
      repository: ref.repository,
      ...(ref.tag ? { tag: ref.tag } : {}),
      ...(ref.digest ? { digest: ref.digest } : {}),
    };
  } catch {
    return undefined;
  }
}

const withLatest = (p: Parsed): Parsed => (p.tag || p.digest ? p : { ...p, tag: 'latest' });

describe("the reference grammar, held against Docker's tables (distribution/reference)", () => {
  it.each(DOCKER_VALID)('valid: %s', (input) => {
    expect(ours(input)).toBeDefined();
  });

  it.each(DOCKER_INVALID)('invalid: %s', (input) => {
    expect(ours(input)).toBeUndefined();
  });

  it.each(REFERENCES)('%s', (input, expected) => {
    expect(ours(input)).toEqual(expected && withLatest(expected));
  });

  it.each(REPOSITORY_INFO)('%j is %s / %s', (spellings, registry, repository) => {
    for (const spelling of spellings) expect(ours(spelling)).toEqual({ registry, repository, tag: 'latest' });
  });

  it.each(WE_REFUSE)('refuses %s on purpose: %s', (input) => {
    expect(ours(input)).toBeUndefined();
  });

  it.each(WE_ACCEPT)('accepts %s on purpose: %s', (input, expected) => {
    expect(ours(input)).toEqual(expected);
  });

  it('the README lists every deliberate difference', () => {
    const readme = fs.readFileSync('README.md', 'utf8');
    for (const [input] of [...WE_REFUSE.slice(0, 1), ...WE_ACCEPT]) expect(readme).toContain(`\`${input}\``);
    expect(readme).toContain('`Registry.Example.com/x`');
  });
});
