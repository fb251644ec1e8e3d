/** Exports of a revision: what is pinned, what is listed and why, and the record a paper cites. Pure. */
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { requirementProblems, environmentProblems } from '../../server/builds/packages.js';
import { emptyInventory, type Inventory, type PythonPackage } from '../../server/inventory/schema.js';
import {
  channelName,
  environmentYml,
  requirementsTxt,
  revisionRecord,
  sourceOptions,
  whyNotPinned,
  type ExportSource,
} from '../../server/revisions/export.js';
import { closestBase } from '../../server/revisions/service.js';
import type { Revision } from '../../server/revisions/schema.js';
import { testSystem } from '../support/systems.js';

const SITE = '/opt/conda/lib/python3.11/site-packages';
const py = (name: string, version: string, installer: string | null = 'pip', location = SITE): PythonPackage => ({
  name,
  version,
  installer,
  location,
});

const revision: Revision = {
  id: 7,
  imageId: 3,
  owner: 'ada',
  number: 2,
  reference: 'registry.example.org/lab/env:1',
  digest: `sha256:${'1'.repeat(64)}`,
  manifestDigest: `sha256:${'2'.repeat(64)}`,
  platform: 'linux/amd64',
  checkId: 12,
  status: 'passed',
  reason: 'tag_moved',
  buildId: null,
  buildNumber: null,
  createdAt: new Date('2026-12-01T10:00:00Z'),
  updatedAt: new Date('2026-12-01T10:00:00Z'),
};

const source: ExportSource = { imageName: 'env', owner: 'ada', revision, checkedAt: new Date('2026-12-01T10:00:00Z'), build: null };

const inventory: Inventory = {
  ...emptyInventory(),
  python: { executable: '/opt/conda/bin/python3.11', version: '3.11.9' },
  pythonPackages: [
    py('xarray', '2024.3.0'),
    py('numpy', '1.26.4', 'conda'),
    py('pip', '24.0'),
    py('setuptools', '69.5.1'),
    py('mytool', '0.1.0', 'pip', '/home/jovyan/src/mytool'),
    py('torch', '2.3.0+cpu'),
    py('legacy', '1.0', null),
    py('python-apt', '2.6.0', 'debian'),
    py('Jupyter_Server', '2.14.0', 'uv'),
  ],
  condaPackages: [
    { name: 'python', version: '3.11.9', build: 'hb806964_0_cpython', channel: 'https://conda.anaconda.org/conda-forge/linux-64' },
    { name: 'numpy', version: '1.26.4', build: 'py311h64a7726_0', channel: 'conda-forge' },
    { name: 'mine', version: '1.0', build: '0', channel: 'file:///home/ada/channel' },
    { name: 'xarray', version: '2024.3.0', build: 'pypi_0', channel: 'pypi' },
  ],
};

describe('requirements.txt', () => {
  const text = requirementsTxt(source, inventory);
  const requirements = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

  it('pins by == what came from a package index, and only that', () => {
    expect(requirements).toEqual(['Jupyter_Server==2.14.0', 'xarray==2024.3.0']);
  });

  it.each([
    ['numpy 1.26.4', 'installed by conda'],
    ['pip 24.0', 'installer tool'],
    ['setuptools 69.5.1', 'installer tool'],
    ['mytool 0.1.0', 'editable or development install'],
    ['torch 2.3.0+cpu', 'a local version'],
    ['legacy 1.0', 'no installer recorded'],
    ['python-apt 2.6.0', 'installed by debian'],
  ])('lists %s in a comment, saying why (%s)', (what, why) => {
    const line = text.split('\n').find((l) => l.startsWith(`#   ${what}:`));
    expect(line).toContain(why);
  });

  it('names the revision, its content and Python in its header, and is a requirements file a build accepts', () => {
    expect(text).toContain('revision 2 (tag moved, check passed)');
    expect(text).toContain(`# Content: sha256:${'2'.repeat(64)} (linux/amd64)`);
    expect(text).toContain('# Python 3.11.9');
    expect(requirementProblems(text)).toEqual([]);
  });

  it("carries a build's package sources over, so that the pins resolve where they did", () => {
    const build = {
      number: 4,
      mode: 'packages' as const,
      base: 'r.example/base:1',
      pip: '--index-url http://127.0.0.1:9999/simple  # the lab index\n--trusted-host 127.0.0.1\nci-greeting==1.0\n-i http://x/simple\n',
      conda: '',
      apt: '',
      dockerfile: '',
      files: [],
      git: null,
    };
    const withBuild = requirementsTxt({ ...source, build }, inventory);
    expect(withBuild).toContain('\n--index-url http://127.0.0.1:9999/simple\n--trusted-host 127.0.0.1\n-i http://x/simple\n');
    expect(requirementProblems(withBuild)).toEqual([]);
    expect(sourceOptions('numpy\n--extra-index-url https://a/simple\n# --index-url http://b\n')).toEqual([
      '--extra-index-url https://a/simple',
    ]);
  });

  it('says in words, with 409, that an image without Python has nothing to pin', () => {
    expect(() => requirementsTxt(source, emptyInventory())).toThrow(/has no Python that runs jupyterhub-singleuser/);
    try {
      environmentYml(source, emptyInventory());
    } catch (err) {
      expect((err as { status: number }).status).toBe(409);
      return;
    }
    expect.fail('an environment.yml of an image without Python was written');
  });
});

describe('environment.yml', () => {
  const text = environmentYml(source, inventory);
  const parsed = parseYaml(text) as { name: string; channels: string[]; dependencies: unknown[] };

  it('pins conda packages by channel, version and build, and PyPI ones under pip', () => {
    expect(parsed.name).toBe('env');
    expect(parsed.channels).toEqual(['conda-forge']);
    expect(parsed.dependencies).toEqual([
      'conda-forge::numpy=1.26.4=py311h64a7726_0',
      'conda-forge::python=3.11.9=hb806964_0_cpython',
      'pip',
      { pip: ['Jupyter_Server==2.14.0', 'xarray==2024.3.0'] },
    ]);
    expect(environmentProblems(text)).toEqual([]);
  });

  it('lists what it cannot pin, saying why', () => {
    expect(text).toContain('#   mine 1.0: from a local channel (file:///home/ada/channel)');
    expect(text).toContain('#   torch 2.3.0+cpu: a local version');
    // Conda's own Python packages are pinned as conda packages, not listed again.
    expect(text).not.toContain('#   numpy 1.26.4');
  });

  it('names the Python when conda does not install it', () => {
    const plain = parseYaml(environmentYml(source, { ...inventory, condaPackages: [] })) as { dependencies: unknown[] };
    expect(plain.dependencies[0]).toBe('python=3.11.9');
  });

  it.each([
    ['https://conda.anaconda.org/conda-forge/linux-64', 'conda-forge'],
    ['https://repo.anaconda.com/pkgs/main/linux-64', 'pkgs/main'],
    ['conda-forge', 'conda-forge'],
    ['https://conda.example.org/lab/noarch', 'https://conda.example.org/lab'],
  ])('names the channel %s %s', (channel, name) => {
    expect(channelName(channel)).toBe(name);
  });
});

describe('the JSON record', () => {
  it('names the registry, the content by digest, the platform, the inventory and the build', () => {
    const record = revisionRecord(source, inventory);
    expect(record).toMatchObject({
      schema: 'custom-images/revision-record/v1',
      image: { owner: 'ada', name: 'env' },
      revision: { number: 2, reason: 'tag_moved', status: 'passed', checkedAt: '2026-12-01T10:00:00.000Z' },
      registry: 'registry.example.org',
      repository: 'lab/env',
      pinned: `registry.example.org/lab/env@sha256:${'2'.repeat(64)}`,
      digest: `sha256:${'1'.repeat(64)}`,
      manifestDigest: `sha256:${'2'.repeat(64)}`,
      platform: 'linux/amd64',
      build: null,
    });
    expect(record.inventory).toEqual(inventory);
    expect(revisionRecord(source, undefined).inventory).toBeNull();
  });
});

describe('the closest base image', () => {
  const system = testSystem({
    build: {
      enabled: true,
      pushTo: 'r.example/built',
      network: 'none',
      baseImages: [
        { name: 'Minimal', image: 'quay.io/jupyter/minimal-notebook:2024-05-27' },
        { name: 'SciPy', image: 'quay.io/jupyter/scipy-notebook:2024-05-27' },
      ],
    },
  });
  const build = (extra: object) => ({ number: 1, pip: '', conda: '', apt: '', dockerfile: '', files: [], git: null, ...extra });

  it.each([
    {
      what: "its build's base",
      reference: 'r.example/built/ada/env:1',
      build: build({ mode: 'packages', base: 'quay.io/jupyter/scipy-notebook:2024-05-27' }),
      base: 'SciPy',
    },
    { what: 'the same repository', reference: 'quay.io/jupyter/minimal-notebook:2025-01-01', build: null, base: 'Minimal' },
    {
      what: "its Dockerfile's first image",
      reference: 'r.example/built/ada/env:1',
      build: build({ mode: 'dockerfile', base: null, dockerfile: 'FROM quay.io/jupyter/scipy-notebook:2023-01-01\nRUN true\n' }),
      base: 'SciPy',
    },
    { what: 'nothing close', reference: 'docker.io/library/python:3.12', build: null, base: undefined },
  ] as const)('is $what', ({ reference, build, base }) => {
    expect(closestBase(system, { reference }, build as never)).toBe(base);
  });
});

describe('whyNotPinned', () => {
  it.each([
    [py('a', '1'), undefined],
    [py('a', '1', 'uv'), undefined],
    [py('a', '1', 'pip', '/usr/lib/python3/dist-packages'), undefined],
    [py('a', '1', 'pip', '/usr/local/lib/python3.11/site-packages/'), undefined],
    [py('a', '1', 'Poetry'), 'installed by Poetry, not from a package index'],
    [
      py('a', '1', null, '/usr/lib/python3/dist-packages'),
      'installed with the OS packages (in /usr/lib/python3/dist-packages, no installer recorded): the OS package pins it',
    ],
  ])('%j: %s', (pkg, why) => {
    expect(whyNotPinned(pkg)).toBe(why);
  });
});
