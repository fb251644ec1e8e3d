/**
 * The build service wired as the app wires it, on a database of the test's
 * own, with the real Docker engine and registries: for tests and benchmarks
 * that build without a hub. Builds run when the test says so ({@link run}).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BuildService, type BuildServiceDeps } from '../../server/builds/service.js';
import { BuildStore, type BuildRow } from '../../server/builds/store.js';
import { GitFetcher } from '../../server/builds/git.js';
import { holdJob } from '../../server/jobs/running.js';
import type { CheckoutLimits } from '../../server/builds/checkoutFs.js';
import { WorkDir } from '../../server/workDir.js';
import { ImageStore } from '../../server/images/store.js';
import type { CheckService, CheckServiceDeps } from '../../server/checks/service.js';
import { createLogger } from '../../server/log.js';
import { RegistryClient } from '../../server/registry/client.js';
import { DockerEngine, dockerFromHost } from '../../server/runner/engine.js';
import { DockerBuilder } from '../../server/runner/dockerBuilder.js';
import type { Keyring } from '../../server/secrets/keyring.js';
import type { ImageReference } from '../../server/registry/reference.js';
import type { Knex } from '../../server/store/db.js';
import { builtImageProblem, parsePushPath } from '../../server/systems/pushPath.js';
import { staticCatalog, type System } from '../../server/systems/schema.js';
import type { SystemService } from '../../server/systems/service.js';
import { checkServices, type CheckServices } from './checkServices.js';
import { testAccess } from './identities.js';

export interface BuildServices {
  builds: BuildService;
  store: BuildStore;
  checks: CheckService;
  checkServices: CheckServices;
  engine: DockerEngine;
  /** Where the build's checkouts went. */
  workDir: WorkDir;
  /** Claims build `id` and runs it to its end, as a worker would. */
  run(id: number, signal?: AbortSignal): Promise<BuildRow>;
}

export function buildServices(
  db: Knex,
  options: {
    keyring: Keyring;
    trustedRegistries: string[];
    trustedGitHosts: string[];
    systems: System[];
    timeoutMs?: number;
    uploadBytes?: number;
    /** Where checkouts go; a fresh folder under the system's temporary one when not given. */
    workDir?: WorkDir;
    checkout?: Partial<CheckoutLimits>;
    contextBytes?: number;
    cgroupParent?: string;
    memoryBytes?: number;
    /**
     * The systems as the app has them, stored in `db` (instead of `systems`):
     * with the site's credentials. Without it builds use none.
     */
    sites?: SystemService;
    diskBytes?: number;
    imageBytes?: number;
    /** Quotas (storage/quota.ts), as the app gives them. */
    quota?: BuildServiceDeps['quota'];
    /** More of the check service's dependencies (what it tells when a check ends, say). */
    checkOverrides?: Partial<CheckServiceDeps>;
  },
): BuildServices {
  const registry = new RegistryClient({ trustedHosts: options.trustedRegistries });
  const engine = new DockerEngine(dockerFromHost(process.env.DOCKER_HOST));
  const services = checkServices(db, { registry, keyring: options.keyring, systems: options.systems, sites: options.sites });
  const checks = services.checks({
    engine,
    runLimits: { timeoutMs: 60_000, memoryBytes: 512 * 1024 * 1024, pids: 64, outputBytes: 16 * 1024 },
    ...options.checkOverrides,
  });
  const store = new BuildStore(db);
  const workDir = options.workDir ?? ownWorkDir();
  const pushPaths = options.systems.flatMap((s) => parsePushPath(s.build.pushTo) ?? []);
  const catalog = options.sites ?? {
    ...staticCatalog(options.systems),
    credentialFor: async () => undefined,
    builtImageProblem: (reference: ImageReference, user: string) =>
      builtImageProblem(reference, user, pushPaths, (repository) => store.pushersOf(repository)),
  };
  const builds = new BuildService({
    store,
    images: services.images,
    imageStore: new ImageStore(db),
    systems: catalog,
    access: testAccess,
    keyring: options.keyring,
    registry,
    git: new GitFetcher({
      trustedHosts: options.trustedGitHosts,
      // The service's defaults (server/config.ts).
      maxBytes: 32 * 1024 * 1024,
      checkout: { maxBytes: 512 * 1024 * 1024, maxFiles: 100_000, maxObjectBytes: 16 * 1024 * 1024, ...options.checkout },
      workDir,
      timeoutMs: 30_000,
    }),
    workDir,
    builder: new DockerBuilder(engine),
    check: (owner, imageId) => checks.queue(owner, imageId),
    limits: {
      dockerfileBytes: 64 * 1024,
      uploadBytes: options.uploadBytes ?? 1024 * 1024,
      uploadFiles: 20,
      contextBytes: options.contextBytes ?? 512 * 1024 * 1024,
    },
    builderLimits: {
      memoryBytes: options.memoryBytes ?? 1024 * 1024 * 1024,
      cpus: 2,
      timeoutMs: options.timeoutMs ?? 600_000,
      cgroupParent: options.cgroupParent,
      diskBytes: options.diskBytes ?? 10e9,
      imageBytes: options.imageBytes ?? 10e9,
    },
    maxQueuedPerUser: 100,
    maxStreamsPerUser: 4,
    logger: createLogger('silent'),
    ...(options.quota ? { quota: options.quota } : {}),
  });
  return {
    builds,
    store,
    checks,
    checkServices: services,
    engine,
    workDir,
    async run(id, signal = new AbortController().signal) {
      const job = await holdJob(db, builds.jobKind, id, 'test');
      if (!job) throw new Error(`build ${id} was not queued`);
      // `signal` is the replica stopping, as the worker tells its jobs.
      signal.addEventListener('abort', () => job.abort('stop'), { once: true });
      await builds.execute((await store.get(id)) as BuildRow, job);
      return (await store.get(id)) as BuildRow;
    },
  };
}

/** A work directory of the caller's process alone, removed when the process exits. */
function ownWorkDir(): WorkDir {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-work-'));
  process.once('exit', () => fs.rmSync(root, { recursive: true, force: true }));
  return WorkDir.open(root);
}

export interface UploadedWheel {
  name: string;
  content: Buffer;
}

/** A pure-Python wheel (ci-greeting 1.0), written with Python's zipfile into `dir`: no package index is reachable here. */
export function greetingWheel(dir: string): UploadedWheel {
  const file = path.join(dir, 'ci_greeting-1.0-py3-none-any.whl');
  execFileSync('/usr/bin/python3', [
    '-c',
    `import zipfile
with zipfile.ZipFile(${JSON.stringify(file)}, 'w') as z:
    z.writestr('ci_greeting/__init__.py', 'def hello():\\n    return "hello from a built image"\\n')
    z.writestr('ci_greeting-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: ci-greeting\\nVersion: 1.0\\n')
    z.writestr('ci_greeting-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: ci\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
    z.writestr('ci_greeting-1.0.dist-info/RECORD', 'ci_greeting/__init__.py,,\\nci_greeting-1.0.dist-info/METADATA,,\\nci_greeting-1.0.dist-info/WHEEL,,\\nci_greeting-1.0.dist-info/RECORD,,\\n')
`,
  ]);
  return { name: path.basename(file), content: fs.readFileSync(file) };
}
