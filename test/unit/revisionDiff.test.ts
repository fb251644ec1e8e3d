/** The diff of two inventories, and the pure rules of revisions (reasons, what is kept, pinned references). Table tests, no services. */
import { describe, expect, it } from 'vitest';
import { emptyInventory, type Inventory, type OsPackage, type PythonPackage } from '../../server/inventory/schema.js';
import { diffInventories, normalizedPythonName } from '../../server/revisions/diff.js';
import { parseRevision, pinnedReference, type Revision } from '../../server/revisions/schema.js';
import { keptRevisions, reasonFor } from '../../server/revisions/service.js';
import { candidatePending, imageStatus, type CheckSummary } from '../../server/images/status.js';

const SITE = '/usr/lib/python3/dist-packages';
const py = (name: string, version: string, installer: string | null = 'pip'): PythonPackage => ({
  name,
  version,
  installer,
  location: SITE,
});
const os = (name: string, version: string, arch: string | null = 'amd64'): OsPackage => ({ name, version, arch });

function inventory(parts: Partial<Inventory> = {}): Inventory {
  return { ...emptyInventory(), python: { executable: '/usr/bin/python3', version: '3.11' }, ...parts };
}

describe('diffInventories', () => {
  it.each([
    {
      what: 'one added, one removed, one changed; names compared as pip compares them',
      from: [py('numpy', '1.26.4'), py('Jupyter_Server', '2.0.0'), py('six', '1.16.0')],
      to: [py('numpy', '2.0.0'), py('jupyter-server', '2.0.0'), py('xarray', '2024.3.0')],
      added: ['xarray'],
      removed: ['six'],
      changed: [['numpy', '1.26.4', '2.0.0']],
      unchanged: 1,
    },
    {
      what: 'the first of a name wins, as on sys.path',
      from: [py('numpy', '1.0'), py('numpy', '9.9')],
      to: [py('numpy', '1.0')],
      added: [],
      removed: [],
      changed: [],
      unchanged: 1,
    },
    {
      what: 'nothing on either side',
      from: [],
      to: [],
      added: [],
      removed: [],
      changed: [],
      unchanged: 0,
    },
  ])('Python packages: $what', ({ from, to, added, removed, changed, unchanged }) => {
    const diff = diffInventories(inventory({ pythonPackages: from }), inventory({ pythonPackages: to }));
    expect(diff.pythonPackages.added.map((p) => p.name)).toEqual(added);
    expect(diff.pythonPackages.removed.map((p) => p.name)).toEqual(removed);
    expect(diff.pythonPackages.changed.map((c) => [c.name, c.from.version, c.to.version])).toEqual(changed);
    expect(diff.pythonPackages.unchanged).toBe(unchanged);
    expect(diff.same).toBe(added.length + removed.length + changed.length === 0);
  });

  it.each([
    {
      what: 'a new version, and multiarch names kept apart by architecture',
      from: [os('libc6', '2.36-9', 'amd64'), os('libc6', '2.36-9', 'i386'), os('bash', '5.2-1')],
      to: [os('libc6', '2.36-9+deb12u1', 'amd64'), os('libc6', '2.36-9', 'i386'), os('bash', '5.2-1')],
      added: [],
      removed: [],
      changed: [['libc6', '2.36-9', '2.36-9+deb12u1']],
    },
    {
      what: 'an architecture that moved to "all" is a change, not a removal and an addition',
      from: [os('python3-six', '1.16.0-4', 'amd64')],
      to: [os('python3-six', '1.16.0-4', 'all')],
      added: [],
      removed: [],
      changed: [['python3-six', '1.16.0-4', '1.16.0-4']],
    },
    {
      what: 'the second architecture of a name installed',
      from: [os('libc6', '2.36-9', 'amd64')],
      to: [os('libc6', '2.36-9', 'amd64'), os('libc6', '2.36-9', 'i386')],
      added: ['libc6'],
      removed: [],
      changed: [],
    },
  ])('OS packages: $what', ({ from, to, added, removed, changed }) => {
    const diff = diffInventories(
      inventory({ osPackages: { manager: 'dpkg', packages: from } }),
      inventory({ osPackages: { manager: 'dpkg', packages: to } }),
    );
    expect(diff.osPackages.added.map((p) => p.name)).toEqual(added);
    expect(diff.osPackages.removed.map((p) => p.name)).toEqual(removed);
    expect(diff.osPackages.changed.map((c) => [c.name, c.from.version, c.to.version])).toEqual(changed);
    expect(diff.osPackages.manager).toBeNull();
  });

  it('conda packages change with their build or channel too', () => {
    const numpy = { name: 'numpy', version: '1.26.4', build: 'py311h64a7726_0', channel: 'conda-forge' };
    const diff = diffInventories(
      inventory({ condaPackages: [numpy, { name: 'zlib', version: '1.3', build: 'h0', channel: 'conda-forge' }] }),
      inventory({
        condaPackages: [
          { ...numpy, build: 'py311h64a7726_1' },
          { name: 'zlib', version: '1.3', build: 'h0', channel: 'conda-forge' },
        ],
      }),
    );
    expect(diff.condaPackages.changed).toEqual([{ name: 'numpy', from: numpy, to: { ...numpy, build: 'py311h64a7726_1' } }]);
    expect(diff.condaPackages.unchanged).toBe(1);
  });

  it('names the version changes of Python, the Jupyter components, CUDA and the package manager', () => {
    const from = inventory({
      jupyter: { jupyterhub: '4.1.5', jupyter_server: '2.14.0', jupyterlab: '4.2.0', notebook: null, ipykernel: '6.29.0' },
      cuda: { cuda: '12.2', cudnn: null },
      osPackages: { manager: 'dpkg', packages: [] },
    });
    const to = inventory({
      python: { executable: '/opt/conda/bin/python3.12', version: '3.12' },
      jupyter: { jupyterhub: '5.0.0', jupyter_server: '2.14.0', jupyterlab: '4.2.0', notebook: '7.2.0', ipykernel: '6.29.0' },
      cuda: { cuda: '12.4', cudnn: '9.1' },
      osPackages: { manager: 'apk', packages: [] },
    });
    const diff = diffInventories(from, to);
    expect(diff.python).toEqual({ from: '3.11', to: '3.12' });
    expect(diff.jupyter).toEqual({ jupyterhub: { from: '4.1.5', to: '5.0.0' }, notebook: { from: null, to: '7.2.0' } });
    expect(diff.cuda).toEqual({ cuda: { from: '12.2', to: '12.4' }, cudnn: { from: null, to: '9.1' } });
    expect(diff.osPackages.manager).toEqual({ from: 'dpkg', to: 'apk' });
    expect(diff.same).toBe(false);
  });

  it('passes on what either side could not read in full', () => {
    const diff = diffInventories(inventory({ incomplete: ['a'] }), inventory({ incomplete: ['a', 'b'] }));
    expect(diff.incomplete).toEqual(['a', 'b']);
  });

  it.each([
    ['Jupyter_Server', 'jupyter-server'],
    ['zope.interface', 'zope-interface'],
    ['ruamel.yaml.clib', 'ruamel-yaml-clib'],
    ['A__B--c', 'a-b-c'],
  ])('normalises %s as %s (PEP 503)', (name, normalized) => {
    expect(normalizedPythonName(name)).toBe(normalized);
  });
});

const revision = (number: number, extra: Partial<Revision> = {}): Revision => ({
  id: number,
  imageId: 1,
  owner: 'ada',
  number,
  reference: 'registry.example.org/lab/env:1',
  digest: `sha256:${String(number).padStart(64, '0')}`,
  manifestDigest: null,
  platform: 'linux/amd64',
  checkId: number,
  status: 'passed',
  reason: 'first',
  buildId: null,
  buildNumber: null,
  createdAt: new Date(0),
  updatedAt: new Date(0),
  ...extra,
});

describe('revisions', () => {
  it.each([
    { what: 'the first content', newest: undefined, check: 'r.example/lab/env:1', build: undefined, reason: 'first' },
    {
      what: 'the same tag, other content',
      newest: revision(1),
      check: 'registry.example.org/lab/env:1',
      build: undefined,
      reason: 'tag_moved',
    },
    {
      what: 'the tag of a pinned image, read again',
      newest: revision(1, { reference: `registry.example.org/lab/env:1@sha256:${'a'.repeat(64)}` }),
      check: 'registry.example.org/lab/env:1',
      build: undefined,
      reason: 'tag_moved',
    },
    { what: 'another tag', newest: revision(1), check: 'registry.example.org/lab/env:2', build: undefined, reason: 'edited' },
    {
      what: 'a reference pinned by the owner',
      newest: revision(1),
      check: `registry.example.org/lab/env:1@sha256:${'b'.repeat(64)}`,
      build: undefined,
      reason: 'edited',
    },
    {
      what: 'a new build',
      newest: revision(1, { buildNumber: 1 }),
      check: `registry.example.org/b/ada/env:2@sha256:${'c'.repeat(64)}`,
      build: { number: 2 },
      reason: 'rebuilt',
    },
  ] as const)('the reason for $what is $reason', ({ newest, check, build, reason }) => {
    expect(reasonFor(newest, { reference: check }, build)).toBe(reason);
  });

  it('keeps the newest revisions, and the one that runs wherever it is', () => {
    const all = [revision(5), revision(4), revision(3), revision(2), revision(1)];
    expect(keptRevisions(all, 2, []).map((r) => r.number)).toEqual([5, 4]);
    expect(keptRevisions(all, 2, [revision(1), undefined]).map((r) => r.number)).toEqual([5, 4, 1]);
    expect(keptRevisions(all, 10, []).map((r) => r.number)).toEqual([5, 4, 3, 2, 1]);
  });

  it.each([
    ['registry.example.org/lab/env:1', 'registry.example.org/lab/env:1@sha256:'],
    [`registry.example.org/lab/env:1@sha256:${'e'.repeat(64)}`, 'registry.example.org/lab/env:1@sha256:'],
    ['lab/env', 'docker.io/lab/env:latest@sha256:'],
  ])('pins %s by its digest', (reference, pinned) => {
    const digest = `sha256:${'f'.repeat(64)}`;
    expect(pinnedReference({ reference, digest })).toBe(`${pinned}${'f'.repeat(64)}`);
  });

  it.each([
    ['3', 3],
    [undefined, undefined],
    ['', undefined],
  ])('reads the revision %s', (raw, number) => {
    expect(parseRevision(raw)).toBe(number);
  });

  it.each(['0', '-1', '1.5', 'x', '99999999999', ['1']])('refuses the revision %s in words naming the field', (raw) => {
    expect(() => parseRevision(raw)).toThrow(/revision: The revision is a whole number from 1/);
  });
});

const checkSummary = (id: number, digest: string, extra: Partial<CheckSummary> = {}): CheckSummary => ({
  id,
  status: 'passed',
  reference: 'r.example/lab/env:1',
  system: 'default',
  createdAt: new Date(0),
  finishedAt: new Date(0),
  digest,
  manifestDigest: null,
  ...extra,
});

describe('a moved tag on the tile', () => {
  const image = { reference: 'r.example/lab/env:1', system: 'default' };
  it.each([
    { what: 'no candidate', candidate: undefined, code: 'passed', pending: false },
    { what: 'a candidate older than the check', candidate: checkSummary(1, 'sha256:b'), code: 'passed', pending: false },
    { what: 'a candidate of the same content', candidate: checkSummary(3, 'sha256:a'), code: 'passed', pending: false },
    { what: 'a candidate of other content', candidate: checkSummary(3, 'sha256:b'), code: 'changed', pending: true },
    { what: 'a candidate being read', candidate: checkSummary(3, 'sha256:a', { status: 'running' }), code: 'changed', pending: true },
    {
      what: 'a candidate that could not be read',
      candidate: checkSummary(3, 'sha256:a', { status: 'error' }),
      code: 'changed',
      pending: true,
    },
  ])('$what: $code', ({ candidate, code, pending }) => {
    const check = checkSummary(2, 'sha256:a');
    expect(candidatePending(check, candidate)).toBe(pending);
    const status = imageStatus(image, check, undefined, candidate);
    expect(status.code).toBe(code);
    expect(status.candidateId).toBe(pending ? candidate?.id : undefined);
  });
});
