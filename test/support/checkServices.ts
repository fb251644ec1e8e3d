/**
 * The image and check services wired as the app wires them, on a database of
 * the test's own, for tests and benchmarks that run checks without a hub.
 */
import { AuditLog } from '../../server/audit/store.js';
import { memoryLayerCache } from '../../server/checks/layerCache.js';
import { CheckService, type CheckServiceDeps } from '../../server/checks/service.js';
import { CheckStore, type CheckRow } from '../../server/checks/store.js';
import { holdJob } from '../../server/jobs/running.js';
import { BuildStore } from '../../server/builds/store.js';
import { ImageService } from '../../server/images/service.js';
import { ImageStore } from '../../server/images/store.js';
import type { RegistryClient } from '../../server/registry/client.js';
import type { Keyring } from '../../server/secrets/keyring.js';
import type { Knex } from '../../server/store/db.js';
import { staticCatalog, type System } from '../../server/systems/schema.js';
import type { SystemService } from '../../server/systems/service.js';
import { testAccess } from './identities.js';
import { testSystem } from './systems.js';
import { InventoryStore } from '../../server/inventory/store.js';

export interface CheckServices {
  store: CheckStore;
  images: ImageService;
  /** A check service with `overrides` over the defaults below; each call builds another on the same stores. */
  checks(overrides?: Partial<CheckServiceDeps>): CheckService;
  /** Claims queued check `id` and runs it to its end with `checks`, as a worker would; the stored check. */
  run(checks: CheckService, id: number, runner?: string): Promise<CheckRow>;
}

export function checkServices(
  db: Knex,
  deps: {
    registry: RegistryClient;
    keyring: Keyring;
    systems?: System[];
    /** Systems stored in `db`, with the site's credentials and the push paths' owners, instead of `systems`. */
    sites?: SystemService;
  },
): CheckServices {
  const sites = deps.sites;
  const systems = sites ?? staticCatalog(deps.systems ?? [testSystem()]);
  const store = new CheckStore(db);
  const images = new ImageService({
    store: new ImageStore(db),
    access: testAccess,
    systems,
    keyring: deps.keyring,
    checks: store,
    builds: new BuildStore(db),
    ...(sites
      ? {
          siteCredentials: (reference, owner, candidates) => sites.credentialFor(reference, owner, candidates),
          builtImageProblem: (reference, user) => sites.builtImageProblem(reference, user),
        }
      : {}),
  });
  return {
    store,
    images,
    checks: (overrides = {}) =>
      new CheckService({
        store,
        access: testAccess,
        images,
        systems,
        registry: deps.registry,
        // One cache for every check, as the service has.
        layers: memoryLayerCache(),
        inventories: new InventoryStore(db),
        hub: { version: async () => '3.0.0' },
        runLimits: { timeoutMs: 10_000, memoryBytes: 256 * 1024 * 1024, pids: 64, outputBytes: 4096 },
        deadlineMs: 60_000,
        maxQueuedPerUser: 100,
        maxStreamsPerUser: 4,
        keyring: deps.keyring,
        keepPulledImages: false,
        audit: new AuditLog(db),
        ...overrides,
      }),
    async run(checks, id, runner = 'test') {
      const job = await holdJob(db, checks.jobKind, id, runner);
      if (!job) throw new Error(`check ${id} was not queued`);
      await checks.execute((await store.get(id))!, job);
      return (await store.get(id))!;
    },
  };
}
