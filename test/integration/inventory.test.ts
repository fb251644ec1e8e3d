/**
 * The inventory held to the truth: each image is built by the Docker engine
 * (or, for Alpine, written by the test), pushed to a real registry, read by
 * the static check, and its recorded packages compared with what
 * `python -m pip list --format=json` and `dpkg-query -W` print when run in
 * that very image (`docker run --network none`): exact sets, versions
 * included.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryLayerCache } from '../../server/checks/layerCache.js';
import { runStaticCheck } from '../../server/checks/staticCheck.js';
import type { Inventory } from '../../server/inventory/schema.js';
import { RegistryClient } from '../../server/registry/client.js';
import { parseReference } from '../../server/registry/reference.js';
import { OPEN_POLICY } from '../../server/systems/schema.js';
import { InventoryService } from '../../server/inventory/service.js';
import { InventoryStore } from '../../server/inventory/store.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { buildServices, greetingWheel } from '../support/builds.js';
import { pidsCgroup } from '../support/cgroup.js';
import { ciDocker } from '../support/docker.js';
import { buildImage, debianBase, debianLayer, pushEngineImage, runIn, uniqueTag } from '../support/engineImages.js';
import { testUser } from '../support/identities.js';
import { testSystem } from '../support/systems.js';
import { debianBuildBase } from '../support/buildRegistry.js';
import { pushImage, singleuserScript } from '../support/images.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';

let registries: TestRegistries;
let client: RegistryClient;
const layers = memoryLayerCache();
/** Engine images this test made, removed at the end (and only these). */
const made: string[] = [];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-inventory-'));

/** A pure-Python wheel made with zipfile (no package index is reachable); its file name. */
function wheel(name: string, version: string, metadata: { name?: string; version?: string } = {}): string {
  const dist = `${name.replace(/[-.]+/g, '_')}-${version}`;
  const file = `${dist}-py3-none-any.whl`;
  const module = name.replace(/[-.]+/g, '_').toLowerCase();
  execFileSync('/usr/bin/python3', [
    '-c',
    `import zipfile
with zipfile.ZipFile(${JSON.stringify(path.join(work, file))}, 'w') as z:
    z.writestr('${module}/__init__.py', '')
    z.writestr('${dist}.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: ${metadata.name ?? name}\\nVersion: ${metadata.version ?? version}\\nSummary: a test package\\n')
    z.writestr('${dist}.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: ci\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
    z.writestr('${dist}.dist-info/RECORD', '')
`,
  ]);
  return file;
}

async function inventoryOf(repo: string, tag: string): Promise<Inventory> {
  const result = await runStaticCheck(
    { registry: client, layers },
    { reference: parseReference(`${registries.open}/${repo}:${tag}`), platform: 'linux/amd64', policy: OPEN_POLICY },
  );
  expect(result.verdict, JSON.stringify(result.findings)).not.toBe('error');
  if (!result.inventory) throw new Error('no inventory');
  return result.inventory;
}

/** `python -m pip list --format=json` in the image, sorted. */
function pipList(image: string, python: string): Array<{ name: string; version: string }> {
  const listed = JSON.parse(runIn(image, ['-m', 'pip', 'list', '--format=json', '--disable-pip-version-check'], python)) as Array<{
    name: string;
    version: string;
  }>;
  return listed.map(({ name, version }) => ({ name, version })).sort((a, b) => a.name.localeCompare(b.name));
}

function recorded(inventory: Inventory): Array<{ name: string; version: string }> {
  return inventory.pythonPackages.map(({ name, version }) => ({ name, version })).sort((a, b) => a.name.localeCompare(b.name));
}

/** `dpkg-query -W` in the image: package, version, architecture. */
function dpkgList(image: string): string[] {
  return runIn(image, ['-W', '-f', '${Package}\\t${Version}\\t${Architecture}\\n'], 'dpkg-query').split('\n').filter(Boolean).sort();
}

/** The kernelspecs jupyter_client finds in the image (the `jupyter` command is not in Debian's package). */
function kernelspecs(image: string): Array<{ name: string; displayName: string; language: string }> {
  const script =
    'import json; from jupyter_client.kernelspec import KernelSpecManager as K; m = K(); ' +
    'print(json.dumps([[n, m.get_kernel_spec(n).display_name, m.get_kernel_spec(n).language] for n in sorted(m.find_kernel_specs())]))';
  const found = JSON.parse(runIn(image, ['-c', script], 'python3')) as string[][];
  return found.map(([name = '', displayName = '', language = '']) => ({ name, displayName, language }));
}

/** The Jupyter versions as pip lists them. */
function jupyterVersions(listed: Array<{ name: string; version: string }>) {
  const version = (name: string) => listed.find((p) => p.name.toLowerCase().replace(/[-_.]+/g, '-') === name)?.version ?? null;
  return {
    jupyterhub: version('jupyterhub'),
    jupyter_server: version('jupyter-server'),
    jupyterlab: version('jupyterlab'),
    notebook: version('notebook'),
    ipykernel: version('ipykernel'),
  };
}

function dpkgRecorded(inventory: Inventory): string[] {
  expect(inventory.osPackages?.manager).toBe('dpkg');
  return (inventory.osPackages?.packages ?? []).map((p) => `${p.name}\t${p.version}\t${p.arch ?? ''}`).sort();
}

beforeAll(async () => {
  registries = await startRegistries();
  client = new RegistryClient({ trustedHosts: registries.trusted });
  debianBase();
}, 600_000);

afterAll(async () => {
  for (const image of made) {
    try {
      execFileSync('docker', ['rmi', '-f', image], { stdio: 'ignore' });
    } catch {
      // Not there (a test that failed before making it).
    }
  }
  fs.rmSync(work, { recursive: true, force: true });
  await registries?.stop();
});

describe('the inventory equals what pip, dpkg-query and apk show', () => {
  it('the Debian jupyterhub image: pip list and dpkg-query -W, exactly', async () => {
    const image = debianBase();
    await pushImage(registries.open, 'inv/debian', '1', { layers: [{ path: debianLayer() }] });
    const inventory = await inventoryOf('inv/debian', '1');
    expect(recorded(inventory)).toEqual(pipList(image, 'python3'));
    expect(dpkgRecorded(inventory)).toEqual(dpkgList(image));
    expect(inventory.python).toEqual({
      executable: '/usr/bin/python3',
      version: runIn(image, ['-c', 'import platform; print(platform.python_version())'], 'python3').trim(),
    });
    expect(inventory.jupyter).toEqual(jupyterVersions(pipList(image, 'python3')));
    expect(inventory.kernelspecs).toEqual(kernelspecs(image));
    expect(inventory.incomplete).toEqual([]);
  }, 600_000);

  it('a built image: pip-installed wheels, a shadowing copy, a .pth directory, removed and purged packages', async () => {
    const tag = uniqueTag('built');
    made.push(tag);
    const files: Record<string, string | Buffer> = {
      [wheel('ci-greeting', '1.0')]: '',
      [wheel('Ci_Mixed.Case', '01.02b3', { version: '01.02.beta-3' })]: '',
      [wheel('certifi', '9999.1')]: '',
      'extra/Extra_Thing-2.0.dist-info/METADATA': 'Metadata-Version: 2.1\nName: Extra_Thing\nVersion: 2.0-r1\n',
      'extra.pth': '# a directory outside the site directories\n/opt/extra\nimport sys\n',
      'kernels/ir/kernel.json': JSON.stringify({ argv: ['R', '--slave'], display_name: 'R 4.3', language: 'R' }),
    };
    for (const name of Object.keys(files)) if (name.endsWith('.whl')) files[name] = fs.readFileSync(path.join(work, name));
    const wheels = Object.keys(files).filter((f) => f.endsWith('.whl'));
    buildImage(
      tag,
      [
        `FROM ${debianBase()}`,
        `COPY ${wheels.join(' ')} /tmp/wheels/`,
        'RUN pip install --no-index --no-deps --break-system-packages /tmp/wheels/*.whl && rm -rf /tmp/wheels',
        'COPY extra /opt/extra',
        'COPY extra.pth /usr/local/lib/python3.11/dist-packages/extra.pth',
        'RUN rm -rf /usr/lib/python3/dist-packages/bleach* && dpkg --purge --force-depends python3-bleach >/dev/null 2>&1; true',
        'COPY kernels /usr/local/share/jupyter/kernels',
        'RUN mkdir -p /usr/local/cuda/lib64 && touch /usr/local/cuda/lib64/libcudart.so.12.2.140 /usr/local/cuda/lib64/libcudnn.so.8.9.7 && ln -s libcudart.so.12.2.140 /usr/local/cuda/lib64/libcudart.so.12',
        '',
      ].join('\n'),
      files,
    );
    await pushEngineImage(registries.open, 'inv/built', '1', tag);
    const inventory = await inventoryOf('inv/built', '1');
    const truth = pipList(tag, 'python3');
    expect(truth).toContainEqual({ name: 'Ci_Mixed.Case', version: '1.2b3' });
    expect(truth).toContainEqual({ name: 'certifi', version: '9999.1' });
    expect(truth).toContainEqual({ name: 'Extra_Thing', version: '2.0.post1' });
    expect(truth.map((p) => p.name)).not.toContain('bleach');
    expect(recorded(inventory)).toEqual(truth);
    expect(inventory.pythonPackages.find((p) => p.name === 'ci-greeting')).toMatchObject({
      installer: 'pip',
      location: '/usr/local/lib/python3.11/dist-packages',
    });
    expect(dpkgRecorded(inventory)).toEqual(dpkgList(tag));
    expect(inventory.kernelspecs).toEqual(kernelspecs(tag));
    expect(inventory.kernelspecs.map((k) => k.name)).toEqual(['ir', 'python3']);
    expect(inventory.cuda).toEqual({ cuda: '12.2.140', cudnn: '8.9.7' });
  }, 600_000);

  it('an image the service built (base image + a pip package), checked by the service: its stored inventory', async () => {
    const db = openDatabase(`sqlite://${work}/build.sqlite`);
    await migrateLatest(db);
    // In the suite's build registry: the engine pushes the base's layer there once a run (test/support/buildRegistry.ts).
    const { registry, image: base } = await debianBuildBase('inventory/base/debian');
    const folder = `${registry}/inventory`;
    const steps = await pidsCgroup(ciDocker(), `ci-inventory-${process.pid}`, 512);
    try {
      const services = buildServices(db, {
        keyring: await createKeyring([new Uint8Array(32).fill(5)]),
        trustedRegistries: [registry],
        trustedGitHosts: [],
        cgroupParent: steps.parent,
        systems: [
          testSystem({
            allowedRegistries: [`${folder}/*`],
            build: {
              enabled: true,
              pushTo: `${folder}/built`,
              network: 'none',
              baseImages: [{ name: 'Debian with JupyterHub', image: base }],
            },
          }),
        ],
      });
      const ada = testUser('ada');
      const { image, build } = await services.builds.create(
        ada,
        'ada',
        {
          name: 'inventory-env',
          system: 'default',
          mode: 'packages',
          base: 'Debian with JupyterHub',
          pip: '--no-index\nci-greeting==1.0\n',
        },
        [greetingWheel(work)],
      );
      const done = await services.run(build.id);
      expect(done.status, done.log).toBe('succeeded');
      const pinned = `${folder}/built/ada/inventory-env@${done.digest ?? ''}`;
      made.push(`${folder}/built/ada/inventory-env:1`);
      const [check] = await services.checkServices.store.forImage('ada', image.id);
      expect((await services.checkServices.run(services.checks, check?.id ?? 0)).status).toBe('passed');

      const inventories = new InventoryService({
        store: new InventoryStore(db),
        images: services.checkServices.images,
        checks: services.checkServices.store,
      });
      const stored = await inventories.forImage(ada, 'ada', image.id);
      expect(stored.digest).toBe(done.digest);
      if (!stored.inventory) throw new Error('no inventory stored');
      const truth = pipList(pinned, 'python3');
      expect(truth).toContainEqual({ name: 'ci-greeting', version: '1.0' });
      expect(recorded(stored.inventory)).toEqual(truth);
      expect(dpkgRecorded(stored.inventory)).toEqual(dpkgList(pinned));
    } finally {
      await steps.remove();
      await db.destroy();
    }
  }, 600_000);

  it('a conda-like environment: a venv with conda-meta records, its own packages before the system ones', async () => {
    const tag = uniqueTag('conda');
    made.push(tag);
    const records = [
      { name: 'python', version: '3.11.2', build: 'h2755cc3_0_cpython', channel: 'https://conda.anaconda.org/conda-forge/linux-64' },
      { name: 'numpy', version: '1.26.4', build: 'py311h64a7726_0', channel: 'conda-forge' },
      {
        name: 'ca-certificates',
        version: '2024.2.2',
        build: 'hbcca054_0',
        url: 'https://repo.anaconda.com/pkgs/main/linux-64/ca-certificates-2024.2.2-hbcca054_0.conda',
      },
    ];
    const files: Record<string, string | Buffer> = { [wheel('ci-greeting', '2.0')]: '' };
    for (const r of records)
      files[`conda-meta/${r.name}-${r.version}-${r.build}.json`] = JSON.stringify({
        build: r.build,
        build_number: 0,
        ...('channel' in r ? { channel: r.channel } : {}),
        files: Array.from({ length: 2000 }, (_, i) => `lib/file${i}.py`),
        name: r.name,
        paths_data: { paths: [{ _path: 'lib/x', path_type: 'hardlink' }] },
        ...('url' in r ? { url: r.url } : {}),
        version: r.version,
      });
    const wheelName = Object.keys(files)[0] ?? '';
    files[wheelName] = fs.readFileSync(path.join(work, wheelName));
    buildImage(
      tag,
      [
        `FROM ${debianBase()}`,
        'RUN python3 -m venv --system-site-packages --without-pip /opt/conda',
        `COPY ${wheelName} /tmp/`,
        `RUN /opt/conda/bin/python -m pip install --no-index --no-deps /tmp/${wheelName} && rm /tmp/${wheelName}`,
        'COPY conda-meta /opt/conda/conda-meta',
        'RUN printf "#!/opt/conda/bin/python\\nimport sys\\nfrom jupyterhub.singleuser import main\\nsys.exit(main())\\n" > /opt/conda/bin/jupyterhub-singleuser && chmod +x /opt/conda/bin/jupyterhub-singleuser',
        'ENV PATH=/opt/conda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '',
      ].join('\n'),
      files,
    );
    await pushEngineImage(registries.open, 'inv/conda', '1', tag);
    const inventory = await inventoryOf('inv/conda', '1');
    const truth = pipList(tag, '/opt/conda/bin/python');
    expect(truth).toContainEqual({ name: 'ci-greeting', version: '2.0' });
    expect(recorded(inventory)).toEqual(truth);
    expect(inventory.python?.executable).toBe('/opt/conda/bin/python');
    expect(inventory.pythonPackages.find((p) => p.name === 'ci-greeting')?.location).toBe('/opt/conda/lib/python3.11/site-packages');
    expect(inventory.condaPackages).toEqual([
      { name: 'ca-certificates', version: '2024.2.2', build: 'hbcca054_0', channel: 'pkgs/main' },
      { name: 'numpy', version: '1.26.4', build: 'py311h64a7726_0', channel: 'conda-forge' },
      { name: 'python', version: '3.11.2', build: 'h2755cc3_0_cpython', channel: 'conda-forge' },
    ]);
  }, 600_000);

  it('an Alpine image: the apk database as written (no apk binary can be had here), Python in site-packages', async () => {
    const installed = [
      ['musl', '1.2.4-r2', 'x86_64'],
      ['busybox', '1.36.1-r5', 'x86_64'],
      ['python3', '3.11.8-r0', 'x86_64'],
      ['py3-pip', '23.1.2-r0', 'noarch'],
    ];
    const database = installed.map(([p, v, a]) => `C:Q1abc=\nP:${p}\nV:${v}\nA:${a}\nS:1000\nT:a package\n`).join('\n');
    await pushImage(registries.open, 'inv/alpine', '1', {
      layers: [
        {
          files: {
            '/lib/apk/db/installed': database,
            '/usr/bin/python3.11': { content: '\u007fELF fake', mode: 0o755 },
            '/usr/bin/python3': { type: 'symlink', target: 'python3.11' },
            '/usr/include/python3.11/patchlevel.h': '#define PY_MAJOR_VERSION 3\n#define PY_VERSION "3.11.8"\n',
            '/usr/lib/python3.11/os.py': '',
            '/usr/lib/python3.11/site.py': '# CPython site.py: site-packages\n',
            '/usr/lib/python3.11/site-packages/pip-23.1.2.dist-info/METADATA': 'Name: pip\nVersion: 23.1.2\n',
            '/usr/lib/python3.11/site-packages/pip-23.1.2.dist-info/INSTALLER': 'apk\n',
            '/usr/lib/python3.11/site-packages/jupyterhub-4.1.5.dist-info/METADATA': 'Name: jupyterhub\nVersion: 4.1.5\n',
            '/usr/bin/jupyterhub-singleuser': singleuserScript('/usr/bin/python3'),
          },
        },
      ],
    });
    const inventory = await inventoryOf('inv/alpine', '1');
    expect(inventory.osPackages).toEqual({
      manager: 'apk',
      packages: installed
        .map(([name, version, arch]) => ({ name, version, arch }))
        .sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '')),
    });
    expect(inventory.python).toEqual({ executable: '/usr/bin/python3', version: '3.11.8' });
    expect(inventory.pythonPackages).toEqual([
      { name: 'jupyterhub', version: '4.1.5', installer: null, location: '/usr/lib/python3.11/site-packages' },
      { name: 'pip', version: '23.1.2', installer: 'apk', location: '/usr/lib/python3.11/site-packages' },
    ]);
  }, 120_000);
});
