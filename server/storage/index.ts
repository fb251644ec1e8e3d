/**
 * The storage feature wired together for app.ts: quotas, the clean-up and
 * its worker, and the service the pages and the API call. The image and
 * build services reach it through the hooks it returns (`quota`, `onDelete`).
 */
import type { Knex } from 'knex';
import type { HubClient } from '../hub/client.js';
import type { AccessRules } from '../hub/access.js';
import type { Foreground } from '../jobs/foreground.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageStore } from '../images/store.js';
import type { Logger } from '../log.js';
import type { RegistryClient, RegistryCredentials } from '../registry/client.js';
import type { ImageReference } from '../registry/reference.js';
import type { DockerEngine } from '../runner/engine.js';
import type { System } from '../systems/schema.js';
import type { StorageDefaults } from '../systems/storage.js';
import { SystemStore } from '../systems/store.js';
import { Cleanup } from './cleanup.js';
import { keptDigests } from './keptDigests.js';
import { Quotas, type Adding } from './quota.js';
import { CleanupRunStore } from './runs.js';
import { StorageService } from './service.js';
import { StorageStore } from './store.js';
import { CleanupWorker } from './worker.js';

export interface StorageDeps {
  db: Knex;
  access: AccessRules;
  hub: Pick<HubClient, 'userNames' | 'userExists'>;
  registry: RegistryClient;
  engine?: DockerEngine | undefined;
  logger: Logger;
  defaults: StorageDefaults;
  /** How often the clean-up runs; 0: only when an admin asks. */
  everyMs: number;
  /** How often the worker looks for runs (tests shorten it). */
  pollMs?: number;
  /** The system offered while none is stored (config). */
  defaultSystem?: System | undefined;
  credentialFor: (reference: ImageReference, owner: string) => Promise<RegistryCredentials | undefined>;
  images: () => {
    list(actor: HubIdentity, owner: string): Promise<Array<{ id: number; system: { slug: string } }>>;
    remove(actor: HubIdentity, owner: string, id: number): Promise<void>;
  };
  /** Whether people are waiting on this replica (the clean-up gives way). */
  foreground?: Pick<Foreground, 'busy'>;
  now?: () => Date;
}

export interface Storage {
  service: StorageService;
  worker: CleanupWorker;
  cleanup: Cleanup;
  quotas: Quotas;
  /** For the image and build services: refuses a save or build past a quota. */
  quota: (owner: string, system: System, adding: Adding) => Promise<void>;
  /** For the image service, in a deletion's transaction: the image's built manifests' grace starts. */
  onDelete: (store: ImageStore, imageId: number, now: Date) => Promise<void>;
}

export function createStorage(deps: StorageDeps): Storage {
  const store = new StorageStore(deps.db);
  const runs = new CleanupRunStore(deps.db);
  const systemStore = new SystemStore(deps.db);
  // Every system that exists; the configured default counts too, so that its users' data is never taken for a removed system's.
  const systems = async (): Promise<System[]> => {
    const stored = await systemStore.list();
    const fallback = deps.defaultSystem;
    return fallback && !stored.some((s) => s.slug === fallback.slug) ? [...stored, fallback] : stored;
  };
  const cleanup = new Cleanup({
    db: deps.db,
    store,
    runs,
    systems,
    credentialFor: deps.credentialFor,
    defaults: deps.defaults,
    registry: deps.registry,
    hub: deps.hub,
    engine: deps.engine,
    logger: deps.logger,
    ...(deps.foreground ? { foreground: deps.foreground } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  });
  const quotas = new Quotas({
    store,
    defaults: deps.defaults,
    measure: (owner) => cleanup.measure({ owner }),
    kept: (owner) => keptDigests(deps.db, owner === undefined ? {} : { owner }),
  });
  const worker = new CleanupWorker({
    db: deps.db,
    runs,
    cleanup,
    engine: deps.engine,
    everyMs: deps.everyMs,
    logger: deps.logger,
    ...(deps.pollMs !== undefined ? { pollMs: deps.pollMs } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  });
  const engine = deps.engine;
  const service = new StorageService({
    access: deps.access,
    store,
    runs,
    cleanup,
    quotas,
    systems,
    defaults: deps.defaults,
    images: {
      list: (actor, owner) => deps.images().list(actor, owner),
      remove: (actor, owner, id) => deps.images().remove(actor, owner, id),
    },
    ...(engine ? { engineId: () => engine.id() } : {}),
    onQueued: () => worker.nudge(),
    ...(deps.now ? { now: deps.now } : {}),
  });
  return {
    service,
    worker,
    cleanup,
    quotas,
    quota: (owner, system, adding) => quotas.assertRoom(owner, system, adding),
    onDelete: (imageStore, imageId, now) => new StorageStore(imageStore.db).imageDeleted(imageId, now),
  };
}
