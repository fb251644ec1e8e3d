import { describe, expect, it } from 'vitest';
import { checkMountPath } from '../../server/systems/mountPath.js';
import { BAD_MOUNT_PATHS } from '../support/badInput.js';

const PREFIXES = ['/home', '/data'];

describe('checkMountPath accepts and normalises', () => {
  it.each([
    ['/home/jovyan/work', '/home/jovyan/work'],
    ['/home/jovyan/work/', '/home/jovyan/work'],
    ['/home//jovyan/./work', '/home/jovyan/work'],
    ['/data', '/data'],
    ['/data/my project', '/data/my project'],
  ])('%s -> %s', (input, normalized) => {
    expect(checkMountPath(input, PREFIXES)).toEqual({ ok: true, path: normalized });
  });

  it('allows any non-system path when the system names no prefixes', () => {
    expect(checkMountPath('/srv/data', [])).toEqual({ ok: true, path: '/srv/data' });
  });
});

describe('checkMountPath refuses', () => {
  it.each(BAD_MOUNT_PATHS)('%j', (input, message) => {
    const result = checkMountPath(input, PREFIXES);
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.message).toMatch(message);
  });
});
