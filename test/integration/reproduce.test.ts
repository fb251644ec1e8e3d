/**
 * Reproduce (issue #25, point 3) on real parts: a package index on 127.0.0.1
 * (PEP 503) with wheels the test makes, the Docker engine's builder, a
 * registry on loopback and the real check. An image is built from a base
 * image plus packages from that index, one of them unpinned; a newer release
 * of that one appears; the revision's exported requirements ("Build from
 * this") build a second image whose inventory holds exactly the pinned
 * versions, not the newer release.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../server/images/store.js';
import type { Inventory } from '../../server/inventory/schema.js';
import { InventoryStore } from '../../server/inventory/store.js';
import { createLogger } from '../../server/log.js';
import { RevisionService } from '../../server/revisions/service.js';
import { RevisionStore } from '../../server/revisions/store.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { staticCatalog, type System } from '../../server/systems/schema.js';
import { buildServices, type BuildServices } from '../support/builds.js';
import { pidsCgroup, type PidsCgroup } from '../support/cgroup.js';
import { ciDocker } from '../support/docker.js';
import { testAccess, testUser } from '../support/identities.js';
import { debianBuildBase } from '../support/buildRegistry.js';
import { startPackageIndex, type PackageIndex } from '../support/packageIndex.js';
import { testSystem } from '../support/systems.js';

/** The Debian base with JupyterHub, in the suite's build registry (test/support/buildRegistry.ts). */
let base: string;
let index: PackageIndex;
let db: Knex;
let dir: string;
let steps: PidsCgroup;
let services: BuildServices;
let revisions: RevisionService;
const ada = testUser('ada');

beforeAll(async () => {
  const debian = await debianBuildBase('reproduce/debian');
  base = debian.image;
  const folder = `${debian.registry}/reproduce`;
  index = await startPackageIndex();
  index.add('ci-alpha', '1.0');
  index.add('ci-alpha', '2.0');
  index.add('ci-beta', '0.5');
  index.add('ci-beta', '0.6');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-reproduce-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  steps = await pidsCgroup(ciDocker(), `ci-reproduce-${process.pid}`, 512);
  const system: System = testSystem({
    allowedRegistries: [`${folder}/*`],
    build: {
      enabled: true,
      pushTo: `${folder}/built`,
      // The index is on the host's loopback.
      network: 'host',
      baseImages: [
        { name: 'Other', image: `${folder}/other:1` },
        { name: 'Debian with JupyterHub', image: base },
      ],
    },
  });
  services = buildServices(db, {
    keyring: await createKeyring([new Uint8Array(32).fill(7)]),
    trustedRegistries: [debian.registry],
    trustedGitHosts: [],
    systems: [system],
    timeoutMs: 240_000,
    cgroupParent: steps.parent,
    // As the app wires it: a check that ends records the image's revision.
    checkOverrides: { onEnded: (id) => revisions.recordCheck(id) },
  });
  revisions = new RevisionService({
    store: new RevisionStore(db),
    access: testAccess,
    images: services.checkServices.images,
    imageStore: new ImageStore(db),
    checks: services.checkServices.store,
    inventories: new InventoryStore(db),
    systems: staticCatalog([system]),
    buildsOf: (owner, imageId) => services.store.forImage(owner, imageId),
    builds: services.builds,
    queueCheck: (owner, imageId, options) => services.checks.queue(owner, imageId, options),
    logger: createLogger('silent'),
  });
}, 300_000);

afterAll(async () => {
  await steps?.remove();
  await db?.destroy();
  await index?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Builds the request to its end, runs the check it queued, and returns the image's id and its inventory. */
async function buildAndCheck(raw: Record<string, unknown>): Promise<{ imageId: number; inventory: Inventory }> {
  const { image, build } = await services.builds.create(ada, 'ada', raw, []);
  const built = await services.run(build.id);
  expect(built.status, built.log).toBe('succeeded');
  const queued = (await db('checks').where({ image_id: image.id, status: 'queued' }).first('id')) as { id: number };
  const check = await services.checkServices.run(services.checks, Number(queued.id));
  expect(check.status, check.log).toBe('passed');
  const inventory = await new InventoryStore(db).get(check.manifestDigest ?? check.digest ?? '', check.platform);
  if (!inventory) throw new Error('the check recorded no inventory');
  return { imageId: image.id, inventory };
}

const versions = (inventory: Inventory) => new Map(inventory.pythonPackages.map((p) => [p.name, p.version]));

describe('exported requirements rebuild the image', { timeout: 900_000 }, () => {
  it('a build from the pins holds the pinned versions, not the newer release the index has by then', async () => {
    const first = await buildAndCheck({
      name: 'original',
      system: 'default',
      mode: 'packages',
      base: 'Debian with JupyterHub',
      pip: `--index-url ${index.url}\nci-alpha==1.0\nci-beta\n`,
    });
    expect(versions(first.inventory).get('ci-beta')).toBe('0.6');
    // The revision names the build that made it, and its record the build's inputs.
    const list = await revisions.list(ada, 'ada', first.imageId);
    expect(list.revisions.map((r) => [r.number, r.reason, r.buildNumber, r.running])).toEqual([[1, 'first', 1, true]]);
    const record = JSON.parse((await revisions.exportRevision(ada, 'ada', first.imageId, 1, 'record.json')).body) as Record<
      string,
      unknown
    >;
    expect(record.build).toMatchObject({ number: 1, mode: 'packages', base, git: null });
    expect((record.build as { pip: string }).pip).toContain(`--index-url ${index.url}`);

    const requirements = (await revisions.exportRevision(ada, 'ada', first.imageId, 1, 'requirements.txt')).body;
    const pins = requirements.split('\n').filter((l) => /^[A-Za-z0-9]/.test(l));
    expect(pins).toEqual(expect.arrayContaining(['ci-alpha==1.0', 'ci-beta==0.6']));
    // Every pin is a distribution pip installed in the original, at that version.
    for (const pin of pins) {
      const [name, version] = pin.split('==');
      expect(first.inventory.pythonPackages.find((p) => p.name === name)).toMatchObject({ version, installer: 'pip' });
    }
    // Where the build's packages came from is carried over.
    expect(requirements).toContain(`\n--index-url ${index.url}\n`);
    // The base image's own Python packages (Debian's) are listed, not pinned.
    expect(requirements).toMatch(/# {3}jupyterhub [^:]+: installed with the OS packages \(in \/usr\/lib\/python3\/dist-packages/);

    // A newer release appears: unpinned, the rebuild would take it.
    index.add('ci-beta', '0.7');
    const filled = await revisions.buildFrom(ada, 'ada', first.imageId, 1);
    expect(filled.values).toMatchObject({ mode: 'packages', base: 'Debian with JupyterHub', system: 'default' });
    expect(filled.values.pip).toBe(requirements);
    const second = await buildAndCheck({ ...filled.values, name: 'reproduced' });

    const rebuilt = versions(second.inventory);
    for (const pin of pins) {
      const [name, version] = pin.split('==');
      expect(rebuilt.get(name ?? ''), name).toBe(version);
    }
    expect(rebuilt.get('ci-beta')).toBe('0.6');
    expect(index.downloads).not.toContain('ci_beta-0.7-py3-none-any.whl');
    // Nothing else differs either: the same base, the same pins.
    expect(second.inventory.pythonPackages).toEqual(first.inventory.pythonPackages);
  });
});
