/**
 * Prometheus gauges for storage: bytes per system and per user (registry,
 * data volumes, pre-pulled images), and the clean-up's last run per lane and
 * what it removed. Read from the database at each scrape (reused for 30 s),
 * so that every replica reports the same figures, whichever ran the clean-up.
 * Per-user series: one per user and system that has storage, for each kind.
 */
import { Gauge, type Registry } from 'prom-client';
import type { StorageService } from '../storage/service.js';

const KINDS = [
  ['registry', 'registryBytes'],
  ['volumes', 'volumeBytes'],
  ['pulled', 'pulledBytes'],
] as const;

/** Figures for a scrape; none (the gauges left empty) when the database does not answer, rather than no metrics at all. */
async function orNothing<T>(read: () => Promise<T>, nothing: T): Promise<T> {
  try {
    return await read();
  } catch {
    return nothing;
  }
}

export function registerStorageMetrics(registry: Registry, storage: Pick<StorageService, 'usageCached' | 'lastRuns'>): void {
  const empty = {
    bySystem: [],
    byUser: [],
    total: { registryBytes: 0, builds: 0, volumeBytes: 0, volumes: 0, pulledBytes: 0, pulledImages: 0 },
  };
  const usage = () => orNothing(() => storage.usageCached(), empty);
  new Gauge({
    name: 'custom_images_storage_system_bytes',
    help: 'Bytes per system: built images in the site registry (each blob once), data volumes, images kept in engines for fast starts',
    labelNames: ['system', 'kind'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const figures = await usage();
      for (const s of figures.bySystem) for (const [kind, field] of KINDS) this.set({ system: s.system, kind }, s[field]);
    },
  });
  new Gauge({
    name: 'custom_images_storage_user_bytes',
    help: 'Bytes per user and system: built images in the site registry (each blob once per user), data volumes, images kept in engines',
    labelNames: ['user', 'system', 'kind'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const figures = await usage();
      for (const u of figures.byUser)
        for (const [kind, field] of KINDS) if (u[field] > 0) this.set({ user: u.user, system: u.system, kind }, u[field]);
    },
  });
  new Gauge({
    name: 'custom_images_storage_built_manifests',
    help: 'Built manifests in the site registry per system',
    labelNames: ['system'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of (await usage()).bySystem) this.set({ system: s.system }, s.builds);
    },
  });
  const lastRun = (name: string, help: string, value: (run: Awaited<ReturnType<StorageService['lastRuns']>>[number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['kind', 'engine'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const run of await orNothing(() => storage.lastRuns(), [])) this.set({ kind: run.kind, engine: run.engine }, value(run));
      },
    });
  lastRun('custom_images_cleanup_last_run_timestamp_seconds', 'When the last clean-up of each lane ended', (r) =>
    Math.round((r.finishedAt?.getTime() ?? 0) / 1000),
  );
  lastRun('custom_images_cleanup_last_run_success', 'Whether the last clean-up of each lane succeeded (1) or failed (0)', (r) =>
    r.status === 'succeeded' ? 1 : 0,
  );
  lastRun(
    'custom_images_cleanup_last_run_removed',
    'Manifests deleted and volumes removed by the last clean-up of each lane',
    (r) => (r.summary?.deletedManifests ?? 0) + (r.summary?.removedVolumes ?? 0),
  );
  lastRun(
    'custom_images_cleanup_last_run_removed_bytes',
    'Bytes the last clean-up of each lane removed (as manifests state them; volumes as measured)',
    (r) => (r.summary?.deletedBytes ?? 0) + (r.summary?.removedVolumeBytes ?? 0),
  );
  lastRun(
    'custom_images_cleanup_last_run_waiting',
    'Manifests and volumes the last clean-up of each lane left for their grace or kept in use',
    (r) => (r.summary?.waiting ?? 0) + (r.summary?.inUse ?? 0),
  );
}
