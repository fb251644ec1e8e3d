/**
 * The package inventory's cost: the static check of the Debian jupyterhub
 * image (about 200 MB of gzip, 300 dpkg packages, 85 Python distributions)
 * with the inventory against the same check without it, in the same run,
 * interleaved; and a forecast over 1,000 stored inventories of 500
 * packages each, against its fixed budget.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { memoryLayerCache } from '../server/checks/layerCache.js';
import { runStaticCheck } from '../server/checks/staticCheck.js';
import { ForecastService } from '../server/inventory/forecastService.js';
import { ForecastStore } from '../server/inventory/forecastStore.js';
import { emptyInventory, type Inventory } from '../server/inventory/schema.js';
import { InventoryStore } from '../server/inventory/store.js';
import { RegistryClient } from '../server/registry/client.js';
import { parseReference } from '../server/registry/reference.js';
import { openDatabase } from '../server/store/db.js';
import { migrateLatest } from '../server/store/migrate.js';
import { OPEN_POLICY, staticCatalog } from '../server/systems/schema.js';
import { testAccess, testUser } from '../test/support/identities.js';
import { pushImage } from '../test/support/images.js';
import { startRegistries } from '../test/support/registry.js';
import { testSystem } from '../test/support/systems.js';
import { percentile, type BenchRow } from './table.js';

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/** With and without the inventory, taking turns, each reading every layer (a fresh layer cache). */
async function checkWithAndWithout(rounds: number): Promise<{ withMs: number; withoutMs: number; packages: number }> {
  const layer = process.env.TEST_DEBIAN_JUPYTERHUB_LAYER;
  if (!layer || !fs.existsSync(layer)) throw new Error('TEST_DEBIAN_JUPYTERHUB_LAYER is not set (.ci/debian-image builds the layer)');
  const registries = await startRegistries();
  try {
    const registry = registries.open;
    await pushImage(registry, 'bench/debian', '1', { layers: [{ path: layer }] });
    const client = new RegistryClient({ trustedHosts: [registry] });
    const reference = parseReference(`${registry}/bench/debian:1`);
    let packages = 0;
    const once = (inventory: boolean) =>
      timed(async () => {
        const result = await runStaticCheck(
          { registry: client, layers: memoryLayerCache(), inventory },
          { reference, platform: 'linux/amd64', policy: OPEN_POLICY },
        );
        if (result.verdict !== 'pass') throw new Error(`bench check: ${JSON.stringify(result.findings)}`);
        if (inventory) packages = (result.inventory?.pythonPackages.length ?? 0) + (result.inventory?.osPackages?.packages.length ?? 0);
      });
    // One of each first, unmeasured: the registry's and the page cache's first reads.
    await once(false);
    await once(true);
    const withMs: number[] = [];
    const withoutMs: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // Alternating which goes first, so that neither always follows the other.
      if (i % 2 === 0) {
        withoutMs.push(await once(false));
        withMs.push(await once(true));
      } else {
        withMs.push(await once(true));
        withoutMs.push(await once(false));
      }
    }
    return { withMs: percentile(withMs, 0.5), withoutMs: percentile(withoutMs, 0.5), packages };
  } finally {
    await registries.stop();
  }
}

/** An inventory of `count` Python packages and as many OS packages, JupyterHub `jupyterhub`. */
function syntheticInventory(count: number, jupyterhub: string, python: string): Inventory {
  const inventory = emptyInventory();
  inventory.python = { executable: '/opt/conda/bin/python', version: `${python}.4` };
  inventory.pythons = [inventory.python];
  inventory.pythonPackages = Array.from({ length: count }, (_, i) => ({
    name: i === 0 ? 'jupyterhub' : `package-${i}`,
    version: i === 0 ? jupyterhub : `1.${i}.0`,
    installer: 'pip',
    location: `/opt/conda/lib/python${python}/site-packages`,
  }));
  inventory.osPackages = {
    manager: 'dpkg',
    packages: Array.from({ length: count }, (_, i) => ({ name: `lib${i}`, version: `2.${i}-1`, arch: 'amd64' })),
  };
  inventory.jupyter.jupyterhub = jupyterhub;
  inventory.ruleInputs = { singleuser: true, interpreter: true, pythonVersion: python, jupyterhubVersion: jupyterhub, pip: true };
  return inventory;
}

/** 1,000 images on one system, each checked at its own digest with a stored inventory; the forecast over them. */
async function forecastOverThousand(rounds: number): Promise<{ ms: number; images: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-bench-forecast-'));
  const db = openDatabase(`sqlite://${dir}/db.sqlite`);
  try {
    await migrateLatest(db);
    const inventories = new InventoryStore(db);
    const now = new Date();
    const images = 1000;
    for (let i = 0; i < images; i++) {
      const digest = `sha256:${i.toString(16).padStart(64, '0')}`;
      const [row] = (await db('images')
        .insert({
          owner: `user${i % 50}`,
          name: `image ${i}`,
          system: 'lab',
          reference_input: `registry.example.org/lab/image${i}:1`,
          reference: `registry.example.org/lab/image${i}:1`,
          registry: 'registry.example.org',
          created_at: now,
          updated_at: now,
        })
        .returning('id')) as Array<{ id: number }>;
      await db('checks').insert({
        image_id: row?.id,
        owner: `user${i % 50}`,
        system: 'lab',
        reference: `registry.example.org/lab/image${i}:1`,
        digest,
        manifest_digest: digest,
        platform: 'linux/amd64',
        policy_hash: 'bench',
        kind: 'static',
        status: 'passed',
        findings: JSON.stringify([{ code: 'python.version', level: 'info', message: 'Python 3.11.' }]),
        facts: null,
        log: '',
        created_at: now,
        finished_at: now,
      });
      await inventories.put(
        digest,
        'linux/amd64',
        syntheticInventory(500, ['3.1.1', '4.1.5', '5.2.1'][i % 3] ?? '5.2.1', i % 4 === 0 ? '3.9' : '3.11'),
      );
    }
    const forecasts = new ForecastService({
      store: new ForecastStore(db),
      inventories,
      systems: staticCatalog([testSystem({ slug: 'lab' })]),
      access: testAccess,
      hubVersion: async () => '5.2.1',
      checks: { latestFor: async () => new Map() },
    });
    const admin = { ...testUser('root'), admin: true };
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      times.push(
        await timed(async () => {
          const forecast = await forecasts.create(admin, 'lab', { hubVersion: '5.2', pythonMin: '3.10' });
          if (forecast.results.length !== images || forecast.counts.fail === 0) throw new Error('forecast did not judge every image');
        }),
      );
    }
    return { ms: percentile(times, 0.5), images };
  } finally {
    await db.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchInventory(options: { rounds?: number } = {}): Promise<BenchRow[]> {
  const rounds = options.rounds ?? 5;
  console.error('bench: static check of the Debian jupyterhub image with and without the inventory…');
  const check = await checkWithAndWithout(rounds);
  console.error('bench: forecast over 1,000 stored inventories…');
  const forecast = await forecastOverThousand(rounds);
  const checkRatio = check.withMs / check.withoutMs;
  return [
    {
      name: 'static check with the inventory / without it (Debian jupyterhub image, same run)',
      value: check.withMs,
      unit: 'ms',
      baseline: check.withoutMs,
      ratio: checkRatio,
      target: '<= 1.05',
      ok: checkRatio <= 1.05,
      note: `median of ${rounds} interleaved; ${check.packages} packages recorded`,
    },
    {
      name: 'forecast over 1,000 stored inventories of 500 packages',
      value: forecast.ms,
      unit: 'ms',
      baseline: 2000,
      ratio: forecast.ms / 2000,
      target: '<= 2 s',
      ok: forecast.ms <= 2000,
      note: `median of ${rounds}; ${forecast.images} images judged`,
    },
  ];
}
