import { describe, expect, it } from 'vitest';
import { parseChallenges } from '../../server/registry/challenge.js';
import { isPublicAddress } from '../../server/registry/guard.js';
import { parsePlatform, selectPlatform } from '../../server/registry/platform.js';
import { retryAfterMs } from '../../server/registry/transport.js';

describe('parseChallenges', () => {
  it.each([
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"',
      [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/python:pull' } }],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['basic realm=simple', [{ scheme: 'basic', params: { realm: 'simple' } }]],
    [
      'Bearer realm="https://r/token",error="insufficient_scope",scope="repository:a:pull,push"',
      [{ scheme: 'bearer', params: { realm: 'https://r/token', error: 'insufficient_scope', scope: 'repository:a:pull,push' } }],
    ],
    ['Bearer realm="a\\"b"', [{ scheme: 'bearer', params: { realm: 'a"b' } }]],
    ['Negotiate, Basic realm="x"', [{ scheme: 'negotiate', params: {} }, { scheme: 'basic', params: { realm: 'x' } }]],
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
    { digest: 'att', platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
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
