/**
 * How storage is shown: the API's JSON (each answer with its zod schema) and
 * the pages' view objects, for quotas, the clean-up's runs and dry run, and
 * data volumes. Never a secret (a manifest's name, a volume's name and its
 * user are what the admin needs to decide).
 */
import { z } from 'zod';
import { formatBytes } from '../../format.js';
import type { ManifestPlanItem, VolumePlanItem } from '../../storage/cleanup.js';
import type { QuotaUsage } from '../../storage/quota.js';
import { REASON_TEXT } from '../../storage/rules.js';
import type { CleanupRunRow } from '../../storage/runs.js';
import type { DataRemoval, DryRun, StorageOverview } from '../../storage/service.js';
import { manifestKey } from '../../storage/store.js';
import type { StorageSettings } from '../../systems/storage.js';
import { DEFAULT_STORAGE, storageToInput } from '../../systems/storage.js';
import { ORPHAN_TEXT } from '../../storage/volumeRules.js';

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

const MeasureSchema = z.object({ used: z.number(), limit: z.number().nullable() });

export const QuotaResponseSchema = z.object({
  system: z.object({ slug: z.string(), displayName: z.string() }),
  images: MeasureSchema,
  builds: MeasureSchema,
  registryBytes: MeasureSchema,
  largest: z.array(z.object({ imageId: z.number().int(), name: z.string(), builds: z.number().int(), bytes: z.number() })),
  retentionDays: z.number(),
});

export function presentQuota(usage: QuotaUsage): z.infer<typeof QuotaResponseSchema> {
  const measure = (m: { used: number; limit: number | undefined }) => ({ used: m.used, limit: m.limit ?? null });
  return QuotaResponseSchema.parse({
    ...usage,
    images: measure(usage.images),
    builds: measure(usage.builds),
    registryBytes: measure(usage.registryBytes),
  });
}

/** A quota on My images: "3 of 20", "1.2 GB of 50 GB", a bar, and whether it is full. */
export function presentQuotaPage(usage: QuotaUsage) {
  const line = (m: { used: number; limit: number | undefined }, bytes: boolean) => {
    const show = (n: number) => (bytes ? formatBytes(n) : String(n));
    const percent = m.limit ? Math.min(100, Math.round((m.used / m.limit) * 100)) : null;
    return {
      text: m.limit === undefined ? `${show(m.used)} (no limit)` : `${show(m.used)} of ${show(m.limit)}`,
      percent,
      full: m.limit !== undefined && m.used >= m.limit,
    };
  };
  return {
    system: usage.system,
    images: line(usage.images, false),
    builds: line(usage.builds, false),
    registry: line(usage.registryBytes, true),
    largest: usage.largest.slice(0, 3).map((i) => ({ ...i, size: formatBytes(i.bytes) })),
    retentionDays: usage.retentionDays,
  };
}

const RunSummarySchema = z.object({
  deletedManifests: z.number(),
  deletedBytes: z.number(),
  removedVolumes: z.number(),
  removedVolumeBytes: z.number(),
  waiting: z.number(),
  inUse: z.number(),
  failures: z.number(),
  removed: z.array(z.string()),
  problems: z.array(z.string()),
});

export const RunResponseSchema = z.object({
  id: z.number().int(),
  kind: z.enum(['registry', 'volumes']),
  engine: z.string().nullable(),
  status: z.enum(['queued', 'running', 'succeeded', 'failed']),
  requestedBy: z.string(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  summary: RunSummarySchema.nullable(),
  message: z.string().nullable(),
});

export function presentRun(run: CleanupRunRow): z.infer<typeof RunResponseSchema> {
  return RunResponseSchema.parse({
    id: run.id,
    kind: run.kind,
    engine: run.engine || null,
    status: run.status,
    requestedBy: run.requestedBy,
    createdAt: iso(run.createdAt),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    summary: run.summary,
    message: run.message,
  });
}

const VolumeResponseSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  user: z.string(),
  system: z.string(),
  engine: z.string(),
  bytes: z.number().nullable(),
  inUse: z.boolean(),
  lastUsedAt: z.string().nullable(),
  /** Why nobody owns it, since when, and when it goes (unless kept or in use); null while someone does. */
  orphan: z
    .object({
      reason: z.enum(['user_removed', 'system_removed', 'user_asked']),
      text: z.string(),
      since: z.string(),
      until: z.string().nullable(),
    })
    .nullable(),
  keptBy: z.string().nullable(),
  /** What the next clean-up does: nothing (owned, kept, waiting, in use), or removes it. */
  next: z.enum(['owned', 'kept', 'grace', 'in_use', 'remove']),
});

export function presentVolume(item: VolumePlanItem): z.infer<typeof VolumeResponseSchema> {
  const { volume, verdict } = item;
  const orphan = verdict.remove
    ? { reason: verdict.reason, text: ORPHAN_TEXT[verdict.reason], since: verdict.since.toISOString(), until: null }
    : verdict.reason === 'owned'
      ? null
      : {
          reason: verdict.orphan,
          text: ORPHAN_TEXT[verdict.orphan],
          since: verdict.since.toISOString(),
          until: verdict.until.toISOString(),
        };
  return VolumeResponseSchema.parse({
    id: volume.id,
    name: volume.name,
    user: volume.user,
    system: volume.system,
    engine: volume.engine,
    bytes: volume.bytes,
    inUse: volume.inUse,
    lastUsedAt: iso(item.lastUsedAt),
    orphan,
    keptBy: volume.keptBy,
    next: verdict.remove ? 'remove' : verdict.reason,
  });
}

const FiguresSchema = z.object({
  registryBytes: z.number(),
  builds: z.number(),
  volumeBytes: z.number(),
  volumes: z.number(),
  pulledBytes: z.number(),
  pulledImages: z.number(),
});

export const StorageResponseSchema = z.object({
  usage: z.object({
    bySystem: z.array(FiguresSchema.extend({ system: z.string() })),
    byUser: z.array(FiguresSchema.extend({ user: z.string(), system: z.string() })),
    total: FiguresSchema,
  }),
  pulledAsOf: z.array(z.object({ engine: z.string(), at: z.string().nullable() })),
  lastRuns: z.array(RunResponseSchema),
  recentRuns: z.array(RunResponseSchema),
  volumes: z.array(VolumeResponseSchema),
  problems: z.array(z.string()),
});

export function presentStorage(overview: StorageOverview): z.infer<typeof StorageResponseSchema> {
  return StorageResponseSchema.parse({
    usage: overview.usage,
    pulledAsOf: overview.pulledAsOf.map((p) => ({ engine: p.engine, at: iso(p.at) })),
    lastRuns: overview.lastRuns.map(presentRun),
    recentRuns: overview.recentRuns.map(presentRun),
    volumes: overview.volumes.map(presentVolume),
    problems: overview.problems,
  });
}

const ManifestItemSchema = z.object({
  id: z.number().int(),
  manifest: z.string(),
  owner: z.string(),
  image: z.string(),
  imageId: z.number().int(),
  build: z.number().int(),
  system: z.string(),
  bytes: z.number().nullable(),
  reason: z.string(),
  text: z.string(),
  /** Deleted: since when it may go; kept: until when (a grace or a recent start), or null for as long as the reason holds. */
  since: z.string().nullable(),
  until: z.string().nullable(),
});

function manifestItem(item: ManifestPlanItem): z.infer<typeof ManifestItemSchema> {
  const { manifest, verdict } = item;
  return {
    id: manifest.id,
    manifest: manifestKey(manifest.repository, manifest.digest),
    owner: manifest.owner,
    image: manifest.imageName,
    imageId: manifest.imageId,
    build: manifest.buildNumber,
    system: manifest.system,
    bytes: manifest.bytes,
    reason: verdict.reason,
    text: REASON_TEXT[verdict.reason],
    since: verdict.keep ? null : verdict.since.toISOString(),
    until: verdict.keep ? iso(verdict.until) : null,
  };
}

export const DryRunResponseSchema = z.object({
  at: z.string(),
  manifests: z.object({
    /** What a clean-up now would delete from the registry. */
    delete: z.array(ManifestItemSchema),
    /** What it keeps for now, with until when. */
    waiting: z.array(ManifestItemSchema),
    /** How many it keeps for good reasons, by reason. */
    kept: z.record(z.string(), z.number()),
    deleteBytes: z.number(),
  }),
  volumes: z.object({ remove: z.array(VolumeResponseSchema), waiting: z.array(VolumeResponseSchema) }),
  problems: z.array(z.string()),
});

export function presentDryRun(dry: DryRun): z.infer<typeof DryRunResponseSchema> {
  const remove = dry.manifests.filter((m) => !m.verdict.keep);
  const waiting = dry.manifests.filter(
    (m) => m.verdict.keep && (m.verdict.reason === 'grace' || m.verdict.reason === 'started' || m.verdict.reason === 'unused'),
  );
  const kept: Record<string, number> = {};
  for (const m of dry.manifests) if (m.verdict.keep) kept[m.verdict.reason] = (kept[m.verdict.reason] ?? 0) + 1;
  return DryRunResponseSchema.parse({
    at: dry.at.toISOString(),
    manifests: {
      delete: remove.map(manifestItem),
      waiting: waiting.map(manifestItem),
      kept,
      deleteBytes: remove.reduce((sum, m) => sum + (m.manifest.bytes ?? 0), 0),
    },
    volumes: {
      remove: dry.volumes.filter((v) => v.verdict.remove).map(presentVolume),
      waiting: dry.volumes.filter((v) => !v.verdict.remove && v.verdict.reason !== 'owned').map(presentVolume),
    },
    problems: dry.problems,
  });
}

export const DataRemovalResponseSchema = z.object({
  requestedAt: z.string().nullable(),
  volumes: z.array(z.object({ name: z.string(), system: z.string(), bytes: z.number().nullable(), removeAfter: z.string().nullable() })),
});

/** A user's data and their request that it go. */
export function presentDataRemoval(data: DataRemoval): z.infer<typeof DataRemovalResponseSchema> {
  return DataRemovalResponseSchema.parse({
    requestedAt: iso(data.requestedAt),
    volumes: data.volumes.map((v) => ({ name: v.name, system: v.system, bytes: v.bytes, removeAfter: iso(v.removeAfter) })),
  });
}

export const StorageSettingsResponseSchema = z.record(z.string(), z.number().nullable());

export function presentStorageSettings(settings: StorageSettings | undefined): z.infer<typeof StorageSettingsResponseSchema> {
  return StorageSettingsResponseSchema.parse(storageToInput(settings ?? DEFAULT_STORAGE));
}
