/**
 * The inventory of layouts the integration tests cannot run (no such
 * interpreter here): the official python image's /usr/local, a real conda
 * prefix, distroless, an rpm image; and the final filesystem's rules
 * (whiteouts, opaque directories) applied to package metadata. Layers are
 * written with tar-stream and read by the check's own reader.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { analyzeImage } from '../../server/inspect/analyze.js';
import { MergedFilesystem } from '../../server/inspect/filesystem.js';
import { indexLayer } from '../../server/inspect/layerIndex.js';
import { extractInventory } from '../../server/inventory/extract.js';
import type { Inventory } from '../../server/inventory/schema.js';
import { OPEN_POLICY } from '../../server/systems/schema.js';
import { layerTar, singleuserScript, type LayerFiles } from '../support/images.js';

async function inventoryOf(layers: LayerFiles[], env: string[] = ['PATH=/usr/local/bin:/usr/bin:/bin']): Promise<Inventory> {
  const fs = new MergedFilesystem();
  for (const files of layers) fs.apply(await indexLayer(Readable.from(await layerTar(files))));
  const config = { architecture: 'amd64', os: 'linux', config: { Env: env } };
  const { facts } = analyzeImage(fs, config as never, { policy: OPEN_POLICY });
  return extractInventory(fs, config as never, facts);
}

const dist = (site: string, name: string, version: string, installer?: string): LayerFiles => ({
  [`${site}/${name}-${version}.dist-info/METADATA`]: `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`,
  ...(installer ? { [`${site}/${name}-${version}.dist-info/INSTALLER`]: `${installer}\n` } : {}),
});

const names = (inventory: Inventory) => inventory.pythonPackages.map((p) => `${p.name}==${p.version}`);

describe('where the singleuser interpreter finds its packages', () => {
  it("the official python image: /usr/local's site-packages, PYTHONPATH first, the first of a name wins", async () => {
    const site = '/usr/local/lib/python3.12/site-packages';
    const inventory = await inventoryOf(
      [
        {
          '/usr/local/bin/python3.12': { content: '\u007fELF', mode: 0o755 },
          '/usr/local/bin/python3': { type: 'symlink', target: 'python3.12' },
          '/usr/local/lib/python3.12/os.py': '',
          '/usr/local/lib/python3.12/site.py': '# CPython\n',
          '/usr/local/include/python3.12/patchlevel.h': '#define PY_VERSION "3.12.4"\n',
          ...dist(site, 'jupyterhub', '5.2.1', 'pip'),
          ...dist(site, 'requests', '2.31.0', 'pip'),
          ...dist('/opt/lib', 'requests', '9.9.9'),
          // Another Python's packages are not this one's.
          ...dist('/usr/lib/python3/dist-packages', 'numpy', '1.24.2', 'debian'),
          '/usr/local/bin/jupyterhub-singleuser': singleuserScript('/usr/local/bin/python3'),
        },
      ],
      ['PATH=/usr/local/bin:/usr/bin:/bin', 'PYTHONPATH=/opt/lib'],
    );
    expect(inventory.python).toEqual({ executable: '/usr/local/bin/python3', version: '3.12.4' });
    expect(names(inventory)).toEqual(['jupyterhub==5.2.1', 'requests==9.9.9']);
    expect(inventory.pythonPackages.find((p) => p.name === 'requests')?.location).toBe('/opt/lib');
  });

  it('a conda prefix: its site-packages, its conda-meta, a .pth directory and an .egg-link project', async () => {
    const site = '/opt/conda/lib/python3.11/site-packages';
    const inventory = await inventoryOf(
      [
        {
          '/opt/conda/bin/python3.11': { content: '\u007fELF', mode: 0o755 },
          '/opt/conda/bin/python': { type: 'symlink', target: 'python3.11' },
          '/opt/conda/lib/python3.11/os.py': '',
          '/opt/conda/conda-meta/python-3.11.9-hb806964_0_cpython.json': JSON.stringify({
            name: 'python',
            version: '3.11.9',
            build: 'hb806964_0_cpython',
            channel: 'https://conda.anaconda.org/conda-forge/linux-64',
          }),
          '/opt/conda/conda-meta/libstdcxx-ng-13.2.0-hc0a3c3a_7.json': '{"truncated',
          ...dist(site, 'jupyterhub', '4.1.5', 'conda'),
          [`${site}/extra.pth`]: '../../../extra\n# comment\nimport os\n/nowhere\n',
          ...dist('/opt/conda/extra', 'Extra.Pkg', '1.0-1'),
          [`${site}/mytool.egg-link`]: '/home/jovyan/mytool\n.\n',
          '/home/jovyan/mytool/mytool.egg-info/PKG-INFO': 'Name: mytool\nVersion: 0.1.dev0\n',
          '/opt/conda/share/jupyter/kernels/python3/kernel.json': '{"display_name": "Python 3 (ipykernel)", "language": "python"}',
          '/opt/conda/bin/jupyterhub-singleuser': singleuserScript('/opt/conda/bin/python'),
        },
      ],
      ['PATH=/opt/conda/bin:/usr/bin:/bin'],
    );
    expect(inventory.python).toEqual({ executable: '/opt/conda/bin/python', version: '3.11.9' });
    expect(names(inventory)).toEqual(['Extra.Pkg==1.0.post1', 'jupyterhub==4.1.5', 'mytool==0.1.dev0']);
    expect(inventory.condaPackages).toEqual([
      { name: 'libstdcxx-ng', version: '13.2.0', build: 'hc0a3c3a_7', channel: '' },
      { name: 'python', version: '3.11.9', build: 'hb806964_0_cpython', channel: 'conda-forge' },
    ]);
    expect(inventory.kernelspecs).toEqual([{ name: 'python3', displayName: 'Python 3 (ipykernel)', language: 'python' }]);
  });

  it('whiteouts and opaque directories of later layers remove packages, as from the filesystem', async () => {
    const site = '/usr/local/lib/python3.12/site-packages';
    const base: LayerFiles = {
      '/usr/local/bin/python3.12': { content: '\u007fELF', mode: 0o755 },
      '/usr/local/lib/python3.12/os.py': '',
      ...dist(site, 'jupyterhub', '5.0.0'),
      ...dist(site, 'gone', '1.0'),
      ...dist(site, 'replaced', '1.0'),
      '/usr/local/bin/jupyterhub-singleuser': singleuserScript('/usr/local/bin/python3.12'),
      '/var/lib/dpkg/status': 'Package: old\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n',
    };
    const inventory = await inventoryOf([
      base,
      {
        [`${site}/.wh.gone-1.0.dist-info`]: '',
        [`${site}/replaced-1.0.dist-info/.wh..wh..opq`]: '',
        [`${site}/replaced-1.0.dist-info/METADATA`]: 'Name: replaced\nVersion: 2.0\n',
        '/var/lib/dpkg/status': 'Package: new\nStatus: install ok installed\nVersion: 2\nArchitecture: amd64\n',
      },
    ]);
    expect(names(inventory)).toEqual(['jupyterhub==5.0.0', 'replaced==2.0']);
    expect(inventory.osPackages).toEqual({ manager: 'dpkg', packages: [{ name: 'new', version: '2', arch: 'amd64' }] });
  });
});

describe('OS packages', () => {
  it('distroless: one status.d file per package', async () => {
    const inventory = await inventoryOf([
      {
        '/var/lib/dpkg/status.d/base-files': 'Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n',
        '/var/lib/dpkg/status.d/python3.11-minimal': 'Package: python3.11-minimal\nVersion: 3.11.2-6\nArchitecture: amd64\n',
        '/var/lib/dpkg/status.d/python3.11-minimal.md5sums': 'abc  usr/bin/python3.11\n',
      },
    ]);
    expect(inventory.osPackages).toEqual({
      manager: 'dpkg',
      packages: [
        { name: 'base-files', version: '12.4+deb12u5', arch: 'amd64' },
        { name: 'python3.11-minimal', version: '3.11.2-6', arch: 'amd64' },
      ],
    });
  });

  it('an rpm image says its packages are not listed', async () => {
    const inventory = await inventoryOf([{ '/var/lib/rpm/rpmdb.sqlite': 'SQLite format 3' }]);
    expect(inventory.osPackages).toBeNull();
    expect(inventory.incomplete).toEqual([expect.stringMatching(/rpm database/)]);
  });
});
