/**
 * Quotas and the clean-up for tests and benchmarks: built images as builds
 * leave them (an image pointing at its newest pushed digest, its build rows,
 * a passed check), and the storage services wired as the app wires them on a
 * database of the test's own, with the time the test says.
 */
import { BuildInputsSchema } from '../../server/builds/inputs.js';
import { BuildStore } from '../../server/builds/store.js';
import { CheckStore } from '../../server/checks/store.js';
import { createHubClient, type HubClient } from '../../server/hub/client.js';
import { ImageStore } from '../../server/images/store.js';
import { createLogger } from '../../server/log.js';
import type { RegistryClient } from '../../server/registry/client.js';
import type { DockerEngine } from '../../server/runner/engine.js';
import type { Keyring } from '../../server/secrets/keyring.js';
import { createStorage, type Storage } from '../../server/storage/index.js';
import type { Knex } from '../../server/store/db.js';
import { policyHash } from '../../server/systems/policy.js';
import type { System } from '../../server/systems/schema.js';
import { SystemService } from '../../server/systems/service.js';
import type { StorageDefaults } from '../../server/systems/storage.js';
import { SystemStore } from '../../server/systems/store.js';
import { testAccess } from './identities.js';
import { testSystem } from './systems.js';

/** The site's defaults in tests: generous, so that only what a test sets binds. */
export const TEST_STORAGE_DEFAULTS: StorageDefaults = {
  userImages: 0,
  userBuilds: 0,
  userRegistryBytes: 0,
  buildRetentionDays: 7,
  volumeGraceDays: 7,
};

/** A system whose builds go to `${registry}/built`, launched by KubeSpawner (no engine needed to launch). */
export function builtSystem(registry: string, overrides: Partial<System> = {}): System {
  return testSystem({
    slug: 'lab',
    displayName: 'Lab',
    allowedRegistries: [`${registry}/*`],
    spawner: 'kubernetes',
    build: { enabled: true, pushTo: `${registry}/built`, network: 'none', baseImages: [] },
    ...overrides,
  });
}

/** One build of a built image, as a build that succeeded leaves its row. */
export interface PushedBuild {
  number: number;
  digest: string;
  finishedAt: Date;
}

/**
 * A built image of `owner`'s with these builds (pushed to
 * `${pushTo}/${owner}/${name}:N`), pointing at `current` (the newest build's
 * digest unless said otherwise), with a passed check of it, as a build and
 * its check leave them. Returns the image id.
 */
export async function insertBuiltImage(
  db: Knex,
  options: { owner: string; name: string; system: System; builds: PushedBuild[]; current?: string; checkedAt?: Date },
): Promise<number> {
  const { owner, name, system, builds } = options;
  const newest = [...builds].sort((a, b) => b.number - a.number)[0];
  if (!newest) throw new Error('a built image has a build');
  const target = (n: number) => `${system.build.pushTo}/${owner}/${name}:${n}`;
  const current = options.current ?? newest.digest;
  const currentNumber = builds.find((b) => b.digest === current)?.number ?? newest.number;
  const reference = `${target(currentNumber)}@${current}`;
  const images = new ImageStore(db);
  const created = builds.reduce((min, b) => (b.finishedAt < min ? b.finishedAt : min), newest.finishedAt);
  const imageId = await images.insert(
    { owner, name, system: system.slug, referenceInput: reference, reference, registry: reference.split('/')[0] ?? '', mountPath: null },
    created,
  );
  for (const build of builds) {
    const id = await BuildStore.insert(db, {
      imageId,
      owner,
      number: build.number,
      requestedBy: owner,
      inputs: BuildInputsSchema.parse({ mode: 'dockerfile', dockerfile: 'FROM scratch\n' }),
      files: [],
      gitToken: null,
      target: target(build.number),
      createdAt: build.finishedAt,
    });
    await db('builds')
      .where({ id })
      .update({ status: 'succeeded', digest: build.digest, started_at: build.finishedAt, finished_at: build.finishedAt });
  }
  const checkedAt = options.checkedAt ?? newest.finishedAt;
  await new CheckStore(db).insert({
    imageId,
    owner,
    system: system.slug,
    reference,
    digest: current,
    manifestDigest: current,
    platform: system.platform,
    policyHash: policyHash(system.policy, system.platform),
    kind: 'static',
    status: 'passed',
    findings: [],
    facts: null,
    log: '',
    progress: null,
    reusedFrom: null,
    createdAt: checkedAt,
    startedAt: checkedAt,
    finishedAt: checkedAt,
    durationMs: 1,
  });
  return imageId;
}

export interface StorageServices extends Storage {
  systems: SystemService;
}

/** The storage feature as the app wires it, on `db`, at the time `now()` says. */
export function storageServices(
  db: Knex,
  options: {
    registry: RegistryClient;
    keyring: Keyring;
    now: () => Date;
    defaults?: StorageDefaults;
    hub?: Pick<HubClient, 'userNames' | 'userExists'>;
    engine?: DockerEngine;
    images?: Parameters<typeof createStorage>[0]['images'];
    /** How often runs are due (0: only when asked), and how often the worker looks. */
    everyMs?: number;
    pollMs?: number;
    /** Whether someone waits on the replica (a launch): the clean-up narrows. */
    foreground?: { busy(): boolean };
  },
): StorageServices {
  const systems = new SystemService({ store: new SystemStore(db), keyring: options.keyring, access: testAccess, now: options.now });
  const storage = createStorage({
    db,
    access: testAccess,
    // A hub nobody answers at, unless the test has one: registry runs never ask it.
    hub: options.hub ?? createHubClient({ apiUrl: 'http://127.0.0.1:9/hub/api', apiToken: 'unused', timeoutMs: 1000 }),
    registry: options.registry,
    engine: options.engine,
    logger: createLogger('silent'),
    defaults: options.defaults ?? TEST_STORAGE_DEFAULTS,
    everyMs: options.everyMs ?? 0,
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
    ...(options.foreground ? { foreground: options.foreground } : {}),
    credentialFor: (reference, owner) => systems.credentialFor(reference, owner),
    images:
      options.images ??
      (() => {
        throw new Error('this test deletes no images through the storage service');
      }),
    now: options.now,
  });
  return { ...storage, systems };
}
