/** The syntax of a repository build's directory with the Dockerfile (builds/contextDirectory.ts): pure, no git. */
import { describe, expect, it } from 'vitest';
import { DirectoryNotUsable, findDirectory, parseDirectory, type GitTreeEntry } from '../../server/builds/contextDirectory.js';

describe('parseDirectory', () => {
  it.each([
    ['', ''],
    ['.', ''],
    ['./', ''],
    ['docker', 'docker'],
    ['docker/', 'docker'],
    ['./envs//gpu/', 'envs/gpu'],
    ['  envs/gpu  ', 'envs/gpu'],
    ['a.b/c-d_e@1+2', 'a.b/c-d_e@1+2'],
    ['-flag/$x (1)/ümlaut', '-flag/$x (1)/ümlaut'],
  ])('%j is the directory %j', (typed, directory) => {
    expect(parseDirectory(typed)).toEqual({ ok: true, directory });
  });

  it.each([
    ['..', /may not leave the repository/],
    ['../outside', /may not leave the repository/],
    ['docker/../../etc', /may not leave the repository/],
    ['/etc', /not an absolute one/],
    ['C:/x', /not an absolute one/],
    ['docker\\sub', /separates its parts with \//],
    ['.git', /may not be in \.git/],
    ['sub/.GIT/hooks', /may not be in \.git/],
    ['line\nbreak', /has a control character/],
    ['x'.repeat(256), /at most 255 characters/],
  ])('%j is refused', (typed, message) => {
    const parsed = parseDirectory(typed);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toMatch(message);
  });
});

describe('findDirectory', () => {
  const trees: Record<string, GitTreeEntry[]> = {
    root: [
      { path: 'docker', mode: '040000', oid: 'docker', type: 'tree' },
      { path: 'link', mode: '120000', oid: 'blob1', type: 'blob' },
      { path: 'README', mode: '100644', oid: 'blob2', type: 'blob' },
      { path: 'module', mode: '160000', oid: 'c0ffee', type: 'commit' },
    ],
    docker: [{ path: 'gpu', mode: '040000', oid: 'gpu', type: 'tree' }],
    gpu: [],
  };
  const read = async (oid: string) => trees[oid] ?? [];

  it('walks to the directory, one tree a component', async () => {
    expect(await findDirectory(read, 'root', 'docker/gpu', 'a'.repeat(40))).toBe('gpu');
    expect(await findDirectory(read, 'root', '', 'a'.repeat(40))).toBe('root');
  });

  it.each([
    ['link', /link is a symbolic link/],
    ['link/x', /link is a symbolic link/],
    ['README', /README is not a directory/],
    ['module', /module is not a directory/],
    ['docker/cpu', /has no directory docker\/cpu at commit aaaaaaaaaaaa/],
  ])('refuses %j', async (directory, message) => {
    const err = await findDirectory(read, 'root', directory, 'a'.repeat(40)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DirectoryNotUsable);
    expect((err as Error).message).toMatch(message);
  });
});
