/**
 * The revision, sharing and launch services wired around the check services
 * as the app wires them (server/app.ts), on a database of the test's own and
 * a real registry, for tests and benchmarks that need no hub: checks record
 * revisions as they end, launches start revisions and read moved tags.
 */
import { AuditLog } from '../../server/audit/store.js';
import { BuildStore } from '../../server/builds/store.js';
import type { CheckService } from '../../server/checks/service.js';
import type { CheckRow } from '../../server/checks/store.js';
import { createHubClient } from '../../server/hub/client.js';
import { HubGroups } from '../../server/hub/groups.js';
import { ImageStore } from '../../server/images/store.js';
import { InventoryStore } from '../../server/inventory/store.js';
import { LaunchService } from '../../server/launch/service.js';
import { LaunchStore } from '../../server/launch/store.js';
import { createLogger } from '../../server/log.js';
import type { RegistryClient } from '../../server/registry/client.js';
import { RevisionService } from '../../server/revisions/service.js';
import { RevisionStore } from '../../server/revisions/store.js';
import { cachedInventories } from '../../server/revisions/inventoryCache.js';
import type { Keyring } from '../../server/secrets/keyring.js';
import { SharingService } from '../../server/sharing/service.js';
import { ShareStore } from '../../server/sharing/store.js';
import type { Knex } from '../../server/store/db.js';
import { staticCatalog, type System } from '../../server/systems/schema.js';
import { checkServices, type CheckServices } from './checkServices.js';
import { testAccess } from './identities.js';

export interface RevisionServices extends CheckServices {
  /** The check service whose ended checks record revisions. */
  checkService: CheckService;
  revisions: RevisionService;
  sharing: SharingService;
  launches: LaunchService;
  inventories: InventoryStore;
  /** Runs every queued check (in the order queued) to its end, as a worker would; the checks run. */
  runQueued(): Promise<CheckRow[]>;
}

export function revisionServices(
  db: Knex,
  deps: {
    registry: RegistryClient;
    keyring: Keyring;
    systems: System[];
    /** Inventories kept decoded (the app keeps 32); 0 reads each from the database every time. */
    inventoryCache?: number;
  },
): RevisionServices {
  const services = checkServices(db, deps);
  const systems = staticCatalog(deps.systems);
  const imageStore = new ImageStore(db);
  const audit = new AuditLog(db);
  const inventories = new InventoryStore(db);
  const sharing = new SharingService({
    access: testAccess,
    images: services.images,
    imageStore,
    shares: new ShareStore(db),
    // Receivers here ask for themselves: their groups come with their identity, and the hub is never asked.
    groups: new HubGroups(createHubClient({ apiUrl: 'http://127.0.0.1:9/hub/api', apiToken: 'unused' }), 0),
    systems,
    checks: services.store,
    audit,
  });
  const revisions: RevisionService = new RevisionService({
    store: new RevisionStore(db),
    access: testAccess,
    images: services.images,
    imageStore,
    checks: services.store,
    inventories: cachedInventories(inventories, deps.inventoryCache ?? 32),
    systems,
    buildsOf: (owner, imageId) => new BuildStore(db).forImage(owner, imageId),
    queueCheck: (owner, imageId, options) => checkService.queue(owner, imageId, options),
    sharing,
    logger: createLogger('silent'),
  });
  const checkService: CheckService = services.checks({ onEnded: (id) => revisions.recordCheck(id) });
  const launches = new LaunchService({
    audit,
    access: testAccess,
    store: new LaunchStore(db),
    images: services.images,
    systems,
    registry: deps.registry,
    engine: undefined,
    sharing,
    revisions,
  });
  return {
    ...services,
    checkService,
    revisions,
    sharing,
    launches,
    inventories,
    async runQueued() {
      const queued = (await db('checks').where({ status: 'queued' }).orderBy('id').select('id')) as Array<{ id: number }>;
      const ran: CheckRow[] = [];
      for (const { id } of queued) ran.push(await services.run(checkService, Number(id)));
      return ran;
    },
  };
}
