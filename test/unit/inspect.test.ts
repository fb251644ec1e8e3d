import { describe, expect, it } from 'vitest';
import { analyzeImage, imagePath, parseShebang } from '../../server/inspect/analyze.js';
import { MergedFilesystem } from '../../server/inspect/filesystem.js';
import { LAYER_INDEX_VERSION, normalizeTarPath, type Entry, type LayerIndex } from '../../server/inspect/layerIndex.js';
import { OPEN_POLICY } from '../../server/systems/schema.js';

const file = (mode = 0o644, head?: string): Entry => ({ type: 'file', mode, size: 10, ...(head ? { head } : {}) });
const link = (target: string): Entry => ({ type: 'symlink', mode: 0o777, size: 0, link: target });
const dir = (): Entry => ({ type: 'dir', mode: 0o755, size: 0 });
const layer = (entries: Record<string, Entry>, whiteouts: string[] = [], opaque: string[] = []): LayerIndex => ({ version: LAYER_INDEX_VERSION, entries, whiteouts, opaque, tarBytes: 0 });

describe('normalizeTarPath', () => {
  it.each([
    ['./usr/bin/', '/usr/bin'],
    ['usr//bin/python', '/usr/bin/python'],
    ['./', '/'],
    ['a/../b', '/b'],
  ])('%s -> %s', (input, expected) => {
    expect(normalizeTarPath(input)).toBe(expected);
  });
});

describe('parseShebang', () => {
  it.each([
    ['#!/usr/bin/python3\nimport x', { interpreter: '/usr/bin/python3', viaEnv: false }],
    ['#! /opt/conda/bin/python3.11 -s\n', { interpreter: '/opt/conda/bin/python3.11', viaEnv: false }],
    ['#!/usr/bin/env python3\n', { interpreter: 'python3', viaEnv: true }],
    ['#!/usr/bin/env -S python3 -u\n', { interpreter: 'python3', viaEnv: true }],
    ["#!/bin/sh\n'''exec' \"/very/long/path/bin/python3.11\" \"$0\" \"$@\"\n' '''\n", { interpreter: '/very/long/path/bin/python3.11', viaEnv: false }],
    ['#!/bin/bash\nexec python3 "$@"\n', { interpreter: '/bin/bash', viaEnv: false }],
    ['\u007fELF', undefined],
    ['import sys', undefined],
  ])('%j', (head, expected) => {
    expect(parseShebang(head)).toEqual(expected);
  });
});

describe('MergedFilesystem', () => {
  it('applies whiteouts to a path and everything under it, only from lower layers', () => {
    const fs = new MergedFilesystem();
    fs.apply(layer({ '/a': dir(), '/a/b': file(), '/a/b2': file(), '/c': file() }));
    fs.apply(layer({ '/a/new': file() }, ['/a/b', '/c']));
    expect(fs.get('/a/b')).toBeUndefined();
    expect(fs.get('/c')).toBeUndefined();
    expect(fs.get('/a/b2')).toBeDefined();
    expect(fs.get('/a/new')).toBeDefined();
  });

  it('hides lower contents of an opaque directory but keeps the layer’s own', () => {
    const fs = new MergedFilesystem();
    fs.apply(layer({ '/opt/x/old': file(), '/opt/x/sub/deep': file() }));
    fs.apply(layer({ '/opt/x/new': file() }, [], ['/opt/x']));
    expect(fs.get('/opt/x/old')).toBeUndefined();
    expect(fs.get('/opt/x/sub/deep')).toBeUndefined();
    expect(fs.get('/opt/x/new')).toBeDefined();
    expect(fs.get('/opt/x')?.type).toBe('dir');
  });

  it('a file replacing a directory hides what was in it', () => {
    const fs = new MergedFilesystem();
    fs.apply(layer({ '/d': dir(), '/d/x': file() }));
    fs.apply(layer({ '/d': file() }));
    expect(fs.get('/d/x')).toBeUndefined();
  });

  it('resolves absolute and relative links, symlinked directories and .., and detects loops', () => {
    const fs = new MergedFilesystem();
    fs.apply(
      layer({
        '/usr/local/bin/tool': link('/opt/env/bin/tool'),
        '/opt/env': link('versions/2'),
        '/opt/versions/2/bin/tool': link('../libexec/tool'),
        '/opt/versions/2/libexec/tool': file(0o755),
        '/loop/a': link('b'),
        '/loop/b': link('a'),
        '/up': link('../../../../opt/versions/2/libexec/tool'),
      }),
    );
    const r = fs.resolve('/usr/local/bin/tool');
    expect(r).toMatchObject({ found: true, path: '/opt/versions/2/libexec/tool' });
    expect(r.via).toHaveLength(3);
    expect(fs.resolve('/up')).toMatchObject({ found: true, path: '/opt/versions/2/libexec/tool' });
    expect(fs.resolve('/loop/a')).toMatchObject({ found: false, reason: 'loop' });
    expect(fs.resolve('/usr/local/bin/tool', false)).toMatchObject({ found: true, path: '/usr/local/bin/tool' });
    expect(fs.resolve('/opt/versions/2/libexec/tool/x')).toMatchObject({ found: false, reason: 'not_a_directory' });
  });

  it('carries a hard link’s content from its target', () => {
    const fs = new MergedFilesystem();
    fs.apply(layer({ '/bin/a': file(0o755, '#!/bin/sh\n') }));
    fs.apply(layer({ '/bin/b': { type: 'hardlink', mode: 0o755, size: 0, link: '/bin/a' } }));
    expect(fs.get('/bin/b')).toMatchObject({ type: 'file', head: '#!/bin/sh\n' });
  });
});

describe('analyzeImage', () => {
  it('reads PATH from the config, or uses Docker’s default', () => {
    expect(imagePath({ config: { Env: ['A=1', 'PATH=/opt/conda/bin:/usr/bin'] } })).toEqual(['/opt/conda/bin', '/usr/bin']);
    expect(imagePath({})).toContain('/usr/local/bin');
  });

  it('refuses an image whose USER is not in /etc/passwd', () => {
    const fs = new MergedFilesystem();
    fs.apply(layer({ '/etc/passwd': { ...file(), head: 'root:x:0:0::/root:/bin/sh\n' } }));
    const { findings } = analyzeImage(fs, { config: { User: 'jovyan' } }, { policy: OPEN_POLICY });
    expect(findings.map((f) => f.code)).toEqual(expect.arrayContaining(['singleuser.missing', 'user.unknown', 'pip.missing']));
  });
});
