import { describe, expect, it } from 'vitest';
import { safeNext } from '../../server/hub/oauth.js';
import { tokenFromHeader } from '../../server/web/apiAuth.js';

describe('safeNext', () => {
  const prefix = '/services/custom-images/';
  it.each([
    ['/services/custom-images/images/3', '/services/custom-images/images/3'],
    ['/services/custom-images/', '/services/custom-images/'],
    ['https://evil.example/', prefix],
    ['//evil.example/services/custom-images/', prefix],
    ['/hub/admin', prefix],
    ['/services/custom-images/\\evil', prefix],
    [undefined, prefix],
    [['a', 'b'], prefix],
  ])('%o -> %s', (next, expected) => {
    expect(safeNext(next, prefix)).toBe(expected);
  });
});

describe('tokenFromHeader', () => {
  it.each([
    ['token abc', 'abc'],
    ['Bearer abc', 'abc'],
    ['bearer abc', 'abc'],
    ['Basic abc', undefined],
    ['token', undefined],
    ['token a b', undefined],
    [undefined, undefined],
  ])('%o -> %o', (header, expected) => {
    expect(tokenFromHeader(header)).toBe(expected);
  });
});
