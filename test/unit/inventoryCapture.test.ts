/**
 * What the layer reading keeps for the inventory, and how it reads names
 * and versions: pure functions on bytes, no services. A hostile file costs
 * time, never the service's memory (measured here on a 2 GB dpkg status).
 */
import { Transform, type Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import tar from 'tar-stream';
import { collectorFor, type Captured } from '../../server/inspect/capture.js';
import { indexLayer } from '../../server/inspect/layerIndex.js';
import { canonicalName, normalizeVersion } from '../../server/inventory/pep440.js';
import { condaChannel } from '../../server/inventory/extract.js';

/** Feeds `text` to the collector for `path` in chunks of `chunk` bytes. */
function capture(path: string, text: string | Buffer, chunk = 7): Captured | undefined {
  const collector = collectorFor(path);
  if (!collector) return undefined;
  const data = Buffer.isBuffer(text) ? text : Buffer.from(text);
  for (let i = 0; i < data.length; i += chunk) collector.write(data.subarray(i, i + chunk));
  return collector.end().captured;
}

describe('versions and names as pip prints them (packaging.version, PEP 503)', () => {
  it.each([
    ['1.0', '1.0'],
    ['01.02-beta.3', '1.2b3'],
    ['1.0-alpha1', '1.0a1'],
    ['1.0.c2', '1.0rc2'],
    ['1.0-preview-3', '1.0rc3'],
    ['2!01.2-r3', '2!1.2.post3'],
    ['0!1.0', '1.0'],
    ['1.0-1', '1.0.post1'],
    ['1.0.dev', '1.0.dev0'],
    ['1.0rc1.post2.dev3', '1.0rc1.post2.dev3'],
    ['v1.0', '1.0'],
    [' 1.0 ', '1.0'],
    ['1.0+Ubuntu-1.007', '1.0+ubuntu.1.7'],
    ['1.8.1.dev0', '1.8.1.dev0'],
    ['2022.9.24', '2022.9.24'],
    ['not a version', 'not a version'],
    ['1.0-foo', '1.0-foo'],
  ])('%j -> %j', (raw, normal) => {
    expect(normalizeVersion(raw)).toBe(normal);
  });

  it.each([
    ['Foo_Bar.baz', 'foo-bar-baz'],
    ['argon2_cffi', 'argon2-cffi'],
    ['Jinja2', 'jinja2'],
    ['a--_.b', 'a-b'],
  ])('%j is the package %j', (name, canonical) => {
    expect(canonicalName(name)).toBe(canonical);
  });
});

describe('what is captured of which file', () => {
  it.each([
    ['/usr/lib/python3/dist-packages/numpy-1.26.4.dist-info/METADATA', 'python-metadata'],
    ['/usr/lib/python3/dist-packages/Jinja2-3.1.2.egg-info/PKG-INFO', 'python-metadata'],
    ['/usr/lib/python3.11/site-packages/distro-1.0.egg-info', 'python-metadata'],
    ['/usr/lib/python3/dist-packages/numpy-1.26.4.dist-info/INSTALLER', 'text'],
    ['/var/lib/dpkg/status', 'packages'],
    ['/var/lib/dpkg/status.d/libc6', 'packages'],
    ['/lib/apk/db/installed', 'packages'],
    ['/opt/conda/conda-meta/numpy-1.26.4-py311h64a7726_0.json', 'conda'],
    ['/usr/local/share/jupyter/kernels/ir/kernel.json', 'kernelspec'],
    ['/opt/venv/pyvenv.cfg', 'text'],
    ['/usr/local/lib/python3.11/site-packages/easy-install.pth', 'text'],
    ['/usr/include/python3.11/patchlevel.h', 'text'],
    ['/usr/lib/python3.11/site.py', 'text'],
  ])('%s: %s', (path, kind) => {
    expect(capture(path, 'x')?.kind).toBe(kind);
  });

  it.each([
    '/home/user/METADATA',
    '/var/lib/dpkg/status-old',
    '/var/lib/dpkg/status.d/libc6.md5sums',
    '/srv/status',
    '/opt/conda/pkgs/numpy.json',
    '/etc/easy-install.pth',
    '/usr/lib/python3.11/kernel.json',
  ])('%s: nothing', (path) => {
    expect(collectorFor(path)).toBeUndefined();
  });

  it('reads Name and Version from the headers only, whatever the description holds', () => {
    const metadata = `Metadata-Version: 2.1\r\nName: Foo_Bar\r\nVersion: 01.0\r\nSummary: s\r\n\r\nName: not-this\n${'long description '.repeat(100_000)}`;
    expect(capture('/x/site-packages/Foo_Bar-1.0.dist-info/METADATA', metadata, 4096)).toEqual({
      kind: 'python-metadata',
      name: 'Foo_Bar',
      version: '01.0',
    });
    expect(capture('/x/site-packages/a.dist-info/METADATA', 'Version: 1\n\nName: late\n')).toEqual({
      kind: 'python-metadata',
      name: null,
      version: '1',
    });
  });

  it('lists what dpkg-query -W lists: every package but those not installed, continuation lines skipped', () => {
    const status = [
      'Package: libc6\nStatus: install ok installed\nMulti-Arch: same\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\nDescription: GNU C\n Package: fake\n .\n',
      'Package: gone\nStatus: purge ok not-installed\nArchitecture: amd64\n',
      'Package: old-conf\nStatus: deinstall ok config-files\nVersion: 1:2.0-1\nArchitecture: all\n',
      'Package: half\nStatus: install reinstreq half-installed\nVersion: 3\nArchitecture: amd64',
    ].join('\n');
    expect(capture('/var/lib/dpkg/status', status)).toEqual({
      kind: 'packages',
      manager: 'dpkg',
      packages: [
        { name: 'libc6', version: '2.36-9+deb12u4', arch: 'amd64' },
        { name: 'old-conf', version: '1:2.0-1', arch: 'all' },
        { name: 'half', version: '3', arch: 'amd64' },
      ],
    });
  });

  it("reads apk's database by its P:, V: and A: lines", () => {
    expect(capture('/lib/apk/db/installed', 'C:Q1x=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:1\n\nP:py3-pip\nV:23.1-r0\nA:noarch\n')).toEqual({
      kind: 'packages',
      manager: 'apk',
      packages: [
        { name: 'musl', version: '1.2.4-r2', arch: 'x86_64' },
        { name: 'py3-pip', version: '23.1-r0', arch: 'noarch' },
      ],
    });
  });

  it('reads a conda record’s top-level keys only, past its file lists and escaped strings', () => {
    const record = JSON.stringify({
      build: 'py311_0',
      depends: ['name "quoted"', 'x'],
      files: Array.from({ length: 5000 }, (_, i) => `lib/f${i}\\"name\\"`),
      name: 'numpy',
      paths_data: { paths: [{ name: 'inner', version: 'nested' }] },
      url: 'https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py311_0.conda',
      version: '1.26.4',
    });
    expect(capture('/opt/conda/conda-meta/numpy-1.26.4-py311_0.json', record, 1000)).toEqual({
      kind: 'conda',
      name: 'numpy',
      version: '1.26.4',
      build: 'py311_0',
      channel: 'https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py311_0.conda',
    });
  });

  it.each([
    ['https://conda.anaconda.org/conda-forge/linux-64', 'conda-forge'],
    ['https://conda.anaconda.org/conda-forge/noarch/x-1-0.tar.bz2', 'conda-forge'],
    ['https://repo.anaconda.com/pkgs/main/linux-64/ca-1-0.conda', 'pkgs/main'],
    ['conda-forge', 'conda-forge'],
    ['https://mirror.example.org/channels/lab/linux-aarch64', 'https://mirror.example.org/channels/lab'],
    ['', ''],
  ])('conda channel %j is %j', (raw, channel) => {
    expect(condaChannel(raw)).toBe(channel);
  });
});

/** A tar layer streamed as it is read: `files` small, and one of `size` bytes made by `fill`, never held whole. */
function streamedLayer(files: Record<string, string>, big: { name: string; size: number; head: string }): tar.Pack {
  const pack = tar.pack();
  void (async () => {
    for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
    const entry = pack.entry({ name: big.name, size: big.size, mode: 0o644 });
    const chunk = Buffer.alloc(4 * 1024 * 1024, 'x');
    let left = big.size;
    const head = Buffer.from(big.head);
    entry.write(head);
    left -= head.length;
    while (left > 0) {
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= part.length;
      if (!entry.write(part)) await new Promise<void>((r) => entry.once('drain', () => r()));
    }
    entry.end(() => undefined);
    pack.finalize();
  })();
  return pack;
}

describe('a hostile package database', () => {
  it('a 2 GB dpkg status of one endless line is read through in bounded memory, its list marked partial', async () => {
    const size = 2 * 1024 * 1024 * 1024;
    const layer = streamedLayer(
      { 'usr/lib/python3/dist-packages/ok-1.0.dist-info/METADATA': 'Name: ok\nVersion: 1.0\n' },
      {
        name: 'var/lib/dpkg/status',
        size,
        head: 'Package: real\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\nPackage: bomb\nDescription: ',
      },
    );
    const before = process.memoryUsage();
    let peak = 0;
    let samples = 0;
    // Measured as the bytes flow (the reading runs in long synchronous stretches a timer would miss).
    const measured = new Transform({
      transform(chunk: Buffer, _enc, callback) {
        const now = process.memoryUsage();
        peak = Math.max(peak, now.heapUsed + now.external - before.heapUsed - before.external);
        samples++;
        callback(null, chunk);
      },
    });
    const index = await indexLayer((layer as unknown as Readable).pipe(measured));
    expect(index.tarBytes).toBeGreaterThan(size);
    expect(index.entries['/var/lib/dpkg/status']?.captured).toEqual({
      kind: 'packages',
      manager: 'dpkg',
      packages: [{ name: 'real', version: '1.0', arch: 'amd64' }],
      truncated: true,
    });
    expect(index.entries['/usr/lib/python3/dist-packages/ok-1.0.dist-info/METADATA']?.captured).toMatchObject({ name: 'ok' });
    // What the reading held above where it started (heap, buffers and external strings), sampled while it ran: far below the file.
    expect(samples).toBeGreaterThan(100);
    expect(peak).toBeLessThan(64 * 1024 * 1024);
  }, 300_000);
});
