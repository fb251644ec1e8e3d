/**
 * The forecast judges images from their stored inventories as a real check
 * with the planned hub version and policy would; and inventories are read
 * only by those who may read the image, never through a digest another
 * registry merely claims. Real registries, a hostile one written here, real
 * SQLite and PostgreSQL.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryLayerCache } from '../../server/checks/layerCache.js';
import { runStaticCheck } from '../../server/checks/staticCheck.js';
import { VERSION_RULE_CODES } from '../../server/inspect/rules.js';
import { ForecastService } from '../../server/inventory/forecastService.js';
import { ForecastStore } from '../../server/inventory/forecastStore.js';
import { InventoryService } from '../../server/inventory/service.js';
import { InventoryStore } from '../../server/inventory/store.js';
import { CheckStore } from '../../server/checks/store.js';
import { RegistryClient } from '../../server/registry/client.js';
import { parseReference } from '../../server/registry/reference.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import type { Knex } from '../../server/store/db.js';
import { staticCatalog, type ImagePolicy, type System } from '../../server/systems/schema.js';
import { checkServices } from '../support/checkServices.js';
import { migratedDatabase, type Engine } from '../support/database.js';
import { testAccess, testUser } from '../support/identities.js';
import { pushImage, pythonWithJupyterhub, singleuserScript, type ImageSpec } from '../support/images.js';
import { freePort, PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';
import { testSystem } from '../support/systems.js';

let registries: TestRegistries;
let hostile: { host: string; stop(): Promise<void> };
/** The victim's manifest and config, which the hostile registry serves byte for byte (but not its layers). */
const copied: { manifest: Buffer; config: Buffer; configDigest: string } = {
  manifest: Buffer.alloc(0),
  config: Buffer.alloc(0),
  configDigest: '',
};

/** jupyterhub-singleuser with Python `python` and JupyterHub `jupyterhub` under `prefix`; `pip: false` leaves pip out. */
function hubImage(options: { jupyterhub: string; python?: string; prefix?: string; pip?: boolean; secret?: string }): ImageSpec {
  const prefix = options.prefix ?? '/usr';
  const python = options.python ?? '3.11';
  const files = pythonWithJupyterhub({ prefix, python, jupyterhub: options.jupyterhub });
  if (options.pip === false) delete files[`${prefix}/bin/pip3`];
  if (options.secret)
    files[`${prefix}/lib/python3/dist-packages/${options.secret}-1.0.dist-info/METADATA`] = `Name: ${options.secret}\nVersion: 1.0\n`;
  return {
    env: [`PATH=${prefix}/bin:/usr/local/bin:/usr/bin:/bin`],
    layers: [{ files }, { files: { [`${prefix}/bin/jupyterhub-singleuser`]: singleuserScript(`${prefix}/bin/python${python}`) } }],
  };
}

const IMAGES: Record<string, ImageSpec> = {
  jh3: hubImage({ jupyterhub: '3.1.1' }),
  jh4: hubImage({ jupyterhub: '4.1.5', python: '3.9', prefix: '/opt/conda' }),
  jh5: hubImage({ jupyterhub: '5.2.1', python: '3.12', prefix: '/opt/conda' }),
  nopip: hubImage({ jupyterhub: '5.0.0', pip: false }),
  none: { layers: [{ files: pythonWithJupyterhub({ jupyterhub: '4.0.0' }) }] },
};

/** A registry that serves the victim's exact manifest and config (its digest is the victim's) but has none of its layers. */
async function startHostileRegistry(): Promise<{ host: string; stop(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/v2/') return void res.writeHead(200).end('{}');
    if (url.startsWith('/v2/evil/copy/manifests/')) {
      res.writeHead(200, {
        'Docker-Content-Digest': `sha256:${createHash('sha256').update(copied.manifest).digest('hex')}`,
        'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
        'Content-Length': copied.manifest.length,
      });
      return void res.end(req.method === 'HEAD' ? undefined : copied.manifest);
    }
    if (url === `/v2/evil/copy/blobs/${copied.configDigest}`)
      return void res.writeHead(200, { 'Content-Length': copied.config.length }).end(copied.config);
    res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { host: `127.0.0.1:${port}`, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

beforeAll(async () => {
  registries = await startRegistries();
  hostile = await startHostileRegistry();
  for (const [name, spec] of Object.entries(IMAGES)) await pushImage(registries.open, `fc/${name}`, '1', spec);
  const victim = await pushImage(registries.open, 'lab/ada', '1', hubImage({ jupyterhub: '4.1.5', secret: 'ada-private-tool' }));
  copied.manifest = victim.manifest;
  copied.configDigest = (JSON.parse(victim.manifest.toString()) as { config: { digest: string } }).config.digest;
  const config = await fetch(`http://${registries.open}/v2/lab/ada/blobs/${copied.configDigest}`);
  copied.config = Buffer.from(await config.text());
}, 60_000);

afterAll(async () => {
  await hostile?.stop();
  await registries?.stop();
});

async function setUp(db: Knex, system: System) {
  const keyring = await createKeyring([new Uint8Array(32).fill(7)]);
  const registry = new RegistryClient({ trustedHosts: [...registries.trusted, hostile.host], attempts: 1 });
  const services = checkServices(db, { registry, keyring, systems: [system] });
  const checks = services.checks();
  const inventoryStore = new InventoryStore(db);
  const checkStore = new CheckStore(db);
  const inventories = new InventoryService({ store: inventoryStore, images: services.images, checks: checkStore });
  const forecasts = new ForecastService({
    store: new ForecastStore(db),
    inventories: inventoryStore,
    systems: staticCatalog([system]),
    access: testAccess,
    hubVersion: async () => '3.0.0',
    checks: checkStore,
  });
  /** Saves an image for `owner` and runs its check to the end; the image's id. */
  const save = async (owner: string, image: string, login: Record<string, string> = {}): Promise<number> => {
    const saved = await services.images.create(testUser(owner), owner, { system: system.slug, image, name: image.split('/')[1], ...login });
    await services.run(checks, (await checks.request(testUser(owner), owner, saved.id)).id);
    return saved.id;
  };
  return { registry, inventories, forecasts, save };
}

const admin = { ...testUser('root'), admin: true };

describe.each<Engine>(['SQLite', 'PostgreSQL'])('forecast on %s', (engine) => {
  it.each<[string, { hubVersion: string; python?: { min?: string; max?: string }; requirePip?: boolean }]>([
    ['JupyterHub 5.2', { hubVersion: '5.2.0' }],
    ['JupyterHub 4 and Python 3.10 or newer', { hubVersion: '4.1', python: { min: '3.10' } }],
    ['JupyterHub 5, pip required, Python 3.11 or older', { hubVersion: '5', requirePip: true, python: { max: '3.11' } }],
  ])(
    'against %s: the verdict of a real check with that policy, for JupyterHub 3, 4 and 5',
    async (_name, target) => {
      const system = testSystem({ slug: 'lab' });
      const db = await migratedDatabase(engine);
      const { registry, forecasts, save } = await setUp(db, system);
      const ids = new Map<number, string>();
      for (const name of Object.keys(IMAGES)) ids.set(await save(name === 'jh4' ? 'bea' : 'ada', `${registries.open}/fc/${name}:1`), name);

      const forecast = await forecasts.create(admin, 'lab', { ...target, pythonMin: target.python?.min, pythonMax: target.python?.max });
      expect(forecast.results).toHaveLength(Object.keys(IMAGES).length);

      const policy: ImagePolicy = { ...system.policy, python: target.python ?? {}, requirePip: target.requirePip ?? false };
      for (const line of forecast.results) {
        const name = ids.get(line.imageId) ?? '';
        const real = await runStaticCheck(
          { registry, layers: memoryLayerCache() },
          { reference: parseReference(`${registries.open}/fc/${name}:1`), platform: 'linux/amd64', policy, hubVersion: target.hubVersion },
        );
        const warned = real.findings.some((f) => f.level === 'warning' && VERSION_RULE_CODES.has(f.code));
        const expected = real.verdict === 'fail' ? 'fail' : warned ? 'warn' : 'pass';
        expect({ name, verdict: line.verdict }).toEqual({ name, verdict: expected });
        // The reasons of the rules judged again are the real check's words.
        for (const f of real.findings.filter((f) => f.level === 'error' && VERSION_RULE_CODES.has(f.code)))
          expect(line.reasons).toContain(f.message);
      }
      const counts = { fail: 0, warn: 0, pass: 0, unknown: 0 };
      for (const line of forecast.results) counts[line.verdict]++;
      expect(forecast.counts).toEqual(counts);
      await db.destroy();
    },
    60_000,
  );
});

describe('a published forecast on the owners’ tiles', () => {
  it('shows each owner their own image’s line, only once published and while the image is at the judged digest', async () => {
    const system = testSystem({ slug: 'lab' });
    const db = await migratedDatabase('SQLite');
    const { forecasts, save } = await setUp(db, system);
    const jh3 = await save('ada', `${registries.open}/fc/jh3:1`);
    const jh4 = await save('bea', `${registries.open}/fc/jh4:1`);
    const forecast = await forecasts.create(admin, 'lab', { hubVersion: '4.1', pythonMin: '3.10' });
    expect(forecast.counts).toEqual({ fail: 1, warn: 1, pass: 0, unknown: 0 });
    const tiles = (owner: string, id: number) => forecasts.notesFor(owner, [{ id, system: 'lab' }]);
    expect((await tiles('bea', jh4)).size).toBe(0);

    await forecasts.publish(admin, forecast.id);
    expect((await tiles('bea', jh4)).get(jh4)).toMatchObject({
      verdict: 'fail',
      planned: 'JupyterHub 4.1, Python 3.10–',
      reasons: [expect.stringContaining('Python 3.9')],
    });
    expect((await tiles('ada', jh3)).get(jh3)).toMatchObject({ verdict: 'warn' });
    // Another owner's line is not theirs.
    expect((await tiles('ada', jh4)).size).toBe(0);
    await expect(forecasts.create(testUser('ada'), 'lab', {})).rejects.toMatchObject({ status: 403 });
    await expect(forecasts.create(admin, 'lab', { hubVersion: 'five', pythonMin: '3' })).rejects.toMatchObject({
      status: 400,
      fields: { hubVersion: expect.stringMatching(/5\.2\.1/), pythonMin: expect.stringMatching(/3\.9/) },
    });
    await db.destroy();
  }, 60_000);
});

describe('a result from before inventories were kept', () => {
  it('is not reused: the image is read once more, and its inventory recorded', async () => {
    const system = testSystem({ slug: 'lab' });
    const db = await migratedDatabase('SQLite');
    const { inventories, save } = await setUp(db, system);
    const first = await save('ada', `${registries.open}/fc/jh5:1`);
    expect((await inventories.forImage(testUser('ada'), 'ada', first)).inventory).not.toBeNull();
    // As a database migrated from before this change has it: results, no inventories.
    await db('inventories').delete();
    const again = await save('bea', `${registries.open}/fc/jh5:1`);
    const [check] = (await db('checks').where({ image_id: again }).select('reused_from')) as Array<{ reused_from: number | null }>;
    expect(check?.reused_from).toBeNull();
    expect((await inventories.forImage(testUser('bea'), 'bea', again)).inventory?.jupyter.jupyterhub).toBe('5.2.1');
    // Now kept, the next check of the digest reuses the result.
    const third = await save('cid', `${registries.open}/fc/jh5:1`);
    const [reused] = (await db('checks').where({ image_id: third }).select('reused_from')) as Array<{ reused_from: number | null }>;
    expect(reused?.reused_from).not.toBeNull();
    await db.destroy();
  }, 60_000);
});

describe('who reads an inventory', () => {
  it("is 404 for another user's image, and nothing for a check that was only handed a copy of someone's manifest", async () => {
    const system = testSystem({ slug: 'lab' });
    const db = await migratedDatabase('SQLite');
    const { inventories, save } = await setUp(db, system);
    // Ada's image is private: read with her registry login (the htpasswd registry shares the open one's storage).
    const ada = await save('ada', `${registries.basic}/lab/ada:1`, { registry: registries.basic, username: USER, password: PASSWORD });
    const own = await inventories.forImage(testUser('ada'), 'ada', ada);
    expect(own.inventory?.pythonPackages.map((p) => p.name)).toContain('ada-private-tool');
    await expect(inventories.forImage(testUser('eve'), 'ada', ada)).rejects.toMatchObject({ status: 404 });

    // Eve's registry serves Ada's manifest byte for byte: the digest is Ada's, the layers are not there.
    const eve = await save('eve', `${hostile.host}/evil/copy:1`);
    const answer = await inventories.forImage(testUser('eve'), 'eve', eve);
    expect(answer.inventory).toBeNull();
    expect(JSON.stringify(answer)).not.toContain('ada-private-tool');
    expect((await inventories.summaries('eve', [eve])).size).toBe(0);
    await db.destroy();
  }, 60_000);
});
