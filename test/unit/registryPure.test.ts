import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digestOf, verifyDigest } from '../../server/registry/digest.js';
import { parseManifest } from '../../server/registry/manifest.js';
import { MEDIA } from '../../server/registry/media.js';
import { parseChallenges } from '../../server/registry/challenge.js';
import { isPublicAddress } from '../../server/registry/guard.js';
import { parsePlatform, selectPlatform } from '../../server/registry/platform.js';
import { retryAfterMs } from '../../server/registry/transport.js';

describe('parseChallenges', () => {
  it.each([
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"',
      [
        {
          scheme: 'bearer',
          params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/python:pull' },
        },
      ],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['basic realm=simple', [{ scheme: 'basic', params: { realm: 'simple' } }]],
    [
      'Bearer realm="https://r/token",error="insufficient_scope",scope="repository:a:pull,push"',
      [{ scheme: 'bearer', params: { realm: 'https://r/token', error: 'insufficient_scope', scope: 'repository:a:pull,push' } }],
    ],
    ['Bearer realm="a\\"b"', [{ scheme: 'bearer', params: { realm: 'a"b' } }]],
    [
      'Negotiate, Basic realm="x"',
      [
        { scheme: 'negotiate', params: {} },
        { scheme: 'basic', params: { realm: 'x' } },
      ],
    ],
    ['', []],
  ])('%s', (header, expected) => {
    expect(parseChallenges(header)).toEqual(expected);
  });
});

describe('selectPlatform', () => {
  const index = [
    { digest: 'amd64', platform: { os: 'linux', architecture: 'amd64' } },
    { digest: 'arm64', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { digest: 'armv6', platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
    {
      digest: 'att',
      platform: { os: 'unknown', architecture: 'unknown' },
      annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
    },
  ];
  it.each([
    ['linux/amd64', 'amd64'],
    ['linux/arm64', 'arm64'],
    ['linux/arm64/v8', 'arm64'],
    ['linux/arm/v6', 'armv6'],
    ['linux/arm/v7', undefined],
    ['linux/s390x', undefined],
    ['windows/amd64', undefined],
  ])('%s -> %s', (wanted, digest) => {
    expect(selectPlatform(index, parsePlatform(wanted))?.digest).toBe(digest);
  });
});

describe('isPublicAddress', () => {
  it.each([
    ['8.8.8.8', true],
    ['2606:4700::1111', true],
    ['127.0.0.1', false],
    ['127.8.9.1', false],
    ['10.1.2.3', false],
    ['172.16.0.1', false],
    ['172.31.255.255', false],
    ['172.32.0.1', true],
    ['192.168.1.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['100.100.100.200', false],
    ['0.0.0.0', false],
    ['224.0.0.1', false],
    ['::1', false],
    ['::', false],
    ['fe80::1', false],
    ['fd00:ec2::254', false],
    ['::ffff:10.0.0.1', false],
    ['::ffff:a00:1', false],
    ['::ffff:8.8.8.8', true],
    ['not-an-ip', false],
  ])('%s -> %s', (address, expected) => {
    expect(isPublicAddress(address)).toBe(expected);
  });
});

describe('retryAfterMs', () => {
  it.each([
    ['5', 5000],
    ['0', 0],
    [null, undefined],
    ['soon', undefined],
  ])('%s -> %s', (header, expected) => {
    expect(retryAfterMs(header)).toBe(expected);
  });
  it('reads an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
  });
});

describe('parseManifest', () => {
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  const oci = { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { digest: 'sha256:c', size: 1 }, layers: [] };
  const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] };

  it.each([
    ['an OCI manifest', json(oci), undefined, 'manifest'],
    ['an OCI index', json(index), undefined, 'index'],
    [
      'a Docker manifest named by its Content-Type',
      json({ schemaVersion: 2, config: { digest: 'sha256:c' }, layers: [] }),
      MEDIA.dockerManifest,
      'manifest',
    ],
    [
      'a Docker manifest list named by its Content-Type',
      json({ schemaVersion: 2, manifests: [] }),
      `${MEDIA.dockerList}; charset=utf-8`,
      'index',
    ],
    [
      'a manifest without any media type, by its fields',
      json({ schemaVersion: 2, config: { digest: 'sha256:c' }, layers: [] }),
      undefined,
      'manifest',
    ],
    ['an index without any media type, by its fields', json({ schemaVersion: 2, manifests: [] }), undefined, 'index'],
  ] as const)('%s', (_name, bytes, contentType, kind) => {
    const parsed = parseManifest(bytes, digestOf(bytes), contentType);
    expect(parsed.kind).toBe(kind);
    expect(parsed.digest).toBe(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  });

  it.each([
    ['bytes that are not what their digest says', json(oci), `sha256:${'0'.repeat(64)}`, undefined, 'registry.digest_mismatch'],
    ['a digest of an algorithm nobody registered', json(oci), `md5:${'0'.repeat(32)}`, undefined, 'registry.unsupported'],
    ['not JSON', Buffer.from('<html>'), undefined, undefined, 'registry.protocol'],
    ['JSON that is not an object', json([1, 2]), undefined, undefined, 'registry.protocol'],
    ['a schema 1 manifest', json({ schemaVersion: 1, name: 'x' }), undefined, undefined, 'registry.unsupported'],
    ['a signed schema 1 manifest', json({ schemaVersion: 2 }), undefined, MEDIA.dockerSchema1Signed, 'registry.unsupported'],
    [
      'an artifact that is no image',
      json({ schemaVersion: 2, mediaType: 'application/vnd.oci.artifact.manifest.v1+json' }),
      undefined,
      undefined,
      'registry.unsupported',
    ],
  ] as const)('refuses %s', (_name, bytes, claimed, contentType, code) => {
    expect(() => parseManifest(bytes, claimed, contentType)).toThrow(expect.objectContaining({ code }));
  });

  it('computes a sha512 digest when it was asked by one', () => {
    const bytes = json(oci);
    expect(parseManifest(bytes, `sha512:${createHash('sha512').update(bytes).digest('hex')}`, undefined).digest).toMatch(
      /^sha512:[0-9a-f]{128}$/,
    );
  });
});

describe('verifyDigest', () => {
  it.each([
    ['sha256', 'hello'],
    ['sha512', 'hello'],
  ] as const)('accepts %s of the bytes', (algorithm, text) => {
    const digest = `${algorithm}:${createHash(algorithm).update(text).digest('hex')}`;
    expect(() => verifyDigest(Buffer.from(text), digest)).not.toThrow();
    expect(() => verifyDigest(Buffer.from(`${text}!`), digest)).toThrow(expect.objectContaining({ code: 'registry.digest_mismatch' }));
  });

  it('refuses other algorithms', () => {
    expect(() => verifyDigest(Buffer.from('x'), `sha384:${'0'.repeat(96)}`)).toThrow(
      expect.objectContaining({ code: 'registry.unsupported' }),
    );
  });
});
