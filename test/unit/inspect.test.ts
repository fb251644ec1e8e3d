import { describe, expect, it } from 'vitest';
import { analyzeImage, imagePath, parseShebang } from '../../server/inspect/analyze.js';
import { MergedFilesystem } from '../../server/inspect/filesystem.js';
import { LAYER_INDEX_VERSION, normalizeTarPath, type Entry, type LayerIndex } from '../../server/inspect/layerIndex.js';
import { OPEN_POLICY } from '../../server/systems/schema.js';

const file = (mode = 0o644, head?: string): Entry => ({ type: 'file', mode, size: 10, ...(head ? { head } : {}) });
const link = (target: string): Entry => ({ type: 'symlink', mode: 0o777, size: 0, link: target });
const dir = (): Entry => ({ type: 'dir', mode: 0o755, size: 0 });
const layer = (entries: Record<string, Entry>, whiteouts: string[] = [], opaque: string[] = []): LayerIndex => ({
  version: LAYER_INDEX_VERSION,
  entries,
  whiteouts,
  opaque,
  tarBytes: 0,
});

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
    [
      "#!/bin/sh\n'''exec' \"/very/long/path/bin/python3.11\" \"$0\" \"$@\"\n' '''\n",
      { interpreter: '/very/long/path/bin/python3.11', viaEnv: false },
    ],
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

  it('warns of an image whose USER is not in /etc/passwd (harmless here: servers run as the system uid)', () => {
    const fs = new MergedFilesystem();
    fs.apply(layer({ '/etc/passwd': { ...file(), head: 'root:x:0:0::/root:/bin/sh\n' } }));
    const { findings } = analyzeImage(fs, { config: { User: 'jovyan' } }, { policy: OPEN_POLICY });
    expect(findings.map((f) => f.code)).toEqual(expect.arrayContaining(['singleuser.missing', 'user.unknown', 'pip.missing']));
    expect(findings.find((f) => f.code === 'user.unknown')?.level).toBe('warning');
  });
});

describe('who the server runs as, in words', () => {
  const passwd = (lines: string) => ({ '/etc/passwd': { ...file(), head: lines } });
  const home = (uid: number, mode = 0o755, gid = uid): Entry => ({ type: 'dir', mode, size: 0, uid, gid });
  const rootAndJovyan = 'root:x:0:0:root:/root:/bin/bash\njovyan:x:1000:100::/home/jovyan:/bin/bash\n';
  const analyze = (entries: Record<string, Entry>, config: { User?: string; Env?: string[] }, policy = OPEN_POLICY) => {
    const fs = new MergedFilesystem();
    fs.apply(layer(entries));
    return analyzeImage(fs, { config }, { policy });
  };
  const runAs = (result: ReturnType<typeof analyze>) =>
    result.findings.find((f) => f.code.startsWith('user.') && f.code !== 'user.unknown');

  it.each([
    [
      'root (no USER), a uid 1000 user with its home',
      {},
      'info',
      /^This image runs as root; on this system it runs as uid 1000 \(jovyan\), gid 100, home \/home\/jovyan\.$/,
    ],
    ['USER 0', { User: '0' }, 'info', /^This image runs as root; on this system it runs as uid 1000/],
    ['USER root:root', { User: 'root:root' }, 'info', /^This image runs as root;/],
    ['its own user is uid 1000', { User: 'jovyan' }, 'info', /^Servers run as the image's own user: uid 1000 \(jovyan\), gid 100/],
    [
      'USER 4242, a uid nobody else has',
      { User: '4242' },
      'info',
      /^This image runs as uid 4242; on this system it runs as uid 1000 \(jovyan\)/,
    ],
  ])('%s', (_name, config, level, message) => {
    const finding = runAs(analyze({ ...passwd(rootAndJovyan), '/home/jovyan': home(1000) }, config));
    expect(finding).toMatchObject({ code: 'user.run_as', level, message: expect.stringMatching(message) });
  });

  it('says that a root image has no user for the uid and no writable home, as a warning, or an error when the system requires it', () => {
    const entries = { ...passwd('root:x:0:0:root:/root:/bin/bash\n'), '/root': home(0, 0o700) };
    const relaxed = runAs(analyze(entries, { Env: ['HOME=/root'] }));
    expect(relaxed).toMatchObject({ code: 'user.uid_missing', level: 'warning' });
    expect(relaxed?.message).toMatch(
      /^This image runs as root; on this system it runs as uid 1000, gid 100, and the image has no user with uid 1000 in \/etc\/passwd \(its users: root=0\), and the home directory \/root is not writable for it/,
    );
    const strict = analyze(entries, { Env: ['HOME=/root'] }, { ...OPEN_POLICY, requireUser: true });
    expect(runAs(strict)).toMatchObject({ code: 'user.uid_missing', level: 'error' });
    expect(strict.findings.some((f) => f.level === 'error' && f.code === 'user.uid_missing')).toBe(true);
  });

  it.each([
    ['owned by the uid', home(1000, 0o755), true],
    ['owned by root', home(0, 0o755), false],
    ['owned by the uid but read-only', home(1000, 0o555), false],
    ['group-writable for its gid 100', { ...home(0, 0o775), gid: 100 }, true],
    ['writable for everyone', home(0, 0o777), true],
  ])('a home %s is writable: %s', (_name, entry, writable) => {
    const result = analyze({ ...passwd(rootAndJovyan), '/home/jovyan': entry }, {});
    expect(result.facts.runAs).toMatchObject({ uid: 1000, gid: 100, user: 'jovyan', home: '/home/jovyan', homeWritable: writable });
    expect(runAs(result)?.code).toBe(writable ? 'user.run_as' : 'user.home_not_writable');
  });

  it('keeps the image’s own uid inside a system range, and uses the range’s first uid otherwise', () => {
    const users = 'root:x:0:0::/root:/bin/sh\nlab:x:1500:100::/home/lab:/bin/sh\nrange:x:1200:100::/home/range:/bin/sh\n';
    const policy = { ...OPEN_POLICY, uid: 1200, uidMax: 1999 };
    const entries = { ...passwd(users), '/home/lab': home(1500), '/home/range': home(1200) };
    expect(analyze(entries, { User: 'lab' }, policy).facts.runAs).toMatchObject({ uid: 1500, user: 'lab', homeWritable: true });
    expect(analyze(entries, { User: 'root' }, policy).facts.runAs).toMatchObject({ uid: 1200, user: 'range' });
  });
});
