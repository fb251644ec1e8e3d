/**
 * A system's storage settings: quotas for each user and for the whole
 * system, how long superseded builds stay in the site registry, and how long
 * data volumes nobody owns are kept. Blank per-user quotas and durations take
 * the site's defaults (server/config.ts); a quota of 0 is no limit.
 */
import { z } from 'zod';

const count = z.number().int().min(0).max(1_000_000).nullable().default(null);
const gigabytes = z.number().min(0).max(1_000_000).nullable().default(null);
const days = z.number().min(0).max(36_500).nullable().default(null);

export const StorageSettingsSchema = z.object({
  /** Images one user may save on the system. */
  userImages: count,
  /** Builds one user's images keep in the site registry (queued and running ones count). */
  userBuilds: count,
  /** What one user's built images take in the site registry, shared layers counted once. */
  userRegistryGb: gigabytes,
  /** The same for all users of the system together; null or 0: no limit. */
  systemImages: count,
  systemBuilds: count,
  systemRegistryGb: gigabytes,
  /** Days a superseded build (or one of a deleted image) stays in the registry before it is deleted. */
  buildRetentionDays: days,
  /** Days a data volume nobody owns is kept before it is removed. */
  volumeGraceDays: days,
});
export type StorageSettings = z.infer<typeof StorageSettingsSchema>;

/** Every value the site's default. */
export const DEFAULT_STORAGE: StorageSettings = {
  userImages: null,
  userBuilds: null,
  userRegistryGb: null,
  systemImages: null,
  systemBuilds: null,
  systemRegistryGb: null,
  buildRetentionDays: null,
  volumeGraceDays: null,
};

/** The site's defaults, from configuration (CUSTOM_IMAGES_QUOTA_*, …_RETENTION_DAYS, …_GRACE_DAYS). */
export interface StorageDefaults {
  userImages: number;
  userBuilds: number;
  userRegistryBytes: number;
  buildRetentionDays: number;
  volumeGraceDays: number;
}

/** A limit in force: undefined is none. */
export interface Limits {
  images: number | undefined;
  builds: number | undefined;
  registryBytes: number | undefined;
}

/** What a system's settings come to with the site's defaults. */
export interface StorageRules {
  user: Limits;
  system: Limits;
  retentionMs: number;
  volumeGraceMs: number;
}

const DAY_MS = 86_400_000;
const limit = (value: number | null | undefined): number | undefined =>
  value === null || value === undefined || value <= 0 ? undefined : value;

/** The rules in force on a system (`settings` undefined: a system that no longer exists, the defaults). */
export function storageRules(settings: StorageSettings | undefined, defaults: StorageDefaults): StorageRules {
  const s = settings ?? DEFAULT_STORAGE;
  const gb = (value: number | null) => (value === null ? undefined : Math.round(value * 1e9));
  return {
    user: {
      images: limit(s.userImages ?? defaults.userImages),
      builds: limit(s.userBuilds ?? defaults.userBuilds),
      registryBytes: limit(gb(s.userRegistryGb) ?? defaults.userRegistryBytes),
    },
    system: { images: limit(s.systemImages), builds: limit(s.systemBuilds), registryBytes: limit(gb(s.systemRegistryGb)) },
    retentionMs: (s.buildRetentionDays ?? defaults.buildRetentionDays) * DAY_MS,
    volumeGraceMs: (s.volumeGraceDays ?? defaults.volumeGraceDays) * DAY_MS,
  };
}

/** A number field of a form or JSON: blank or null is "the default" (null). */
const optionalNumber = (what: string, options: { integer: boolean }) =>
  z
    .union([z.number(), z.string().trim(), z.null()])
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === null || v === '') return null;
      const n = typeof v === 'number' ? v : /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
      if (!Number.isFinite(n) || n < 0 || n > 1_000_000 || (options.integer && !Number.isInteger(n))) {
        ctx.addIssue({ code: 'custom', message: what });
        return z.NEVER;
      }
      return n;
    });

/** The storage fields of the admin form, the API and seed files (flat, as a form sends them). */
export const StorageInputShape = {
  quotaImages: optionalNumber('Images per user is a whole number (0: no limit), or blank for the site default', { integer: true }),
  quotaBuilds: optionalNumber('Builds kept per user is a whole number (0: no limit), or blank for the site default', { integer: true }),
  quotaRegistryGb: optionalNumber('Registry space per user is a number of GB (0: no limit), or blank for the site default', {
    integer: false,
  }),
  systemQuotaImages: optionalNumber('Images on the system is a whole number, or blank for no limit', { integer: true }),
  systemQuotaBuilds: optionalNumber('Builds kept on the system is a whole number, or blank for no limit', { integer: true }),
  systemQuotaRegistryGb: optionalNumber('Registry space of the system is a number of GB, or blank for no limit', { integer: false }),
  buildRetentionDays: optionalNumber('Days superseded builds are kept is a number of days, or blank for the site default', {
    integer: false,
  }),
  volumeGraceDays: optionalNumber('Days unowned data is kept is a number of days, or blank for the site default', { integer: false }),
};

/** The flat input fields to the settings. */
export function storageFromInput(input: {
  quotaImages: number | null;
  quotaBuilds: number | null;
  quotaRegistryGb: number | null;
  systemQuotaImages: number | null;
  systemQuotaBuilds: number | null;
  systemQuotaRegistryGb: number | null;
  buildRetentionDays: number | null;
  volumeGraceDays: number | null;
}): StorageSettings {
  return {
    userImages: input.quotaImages,
    userBuilds: input.quotaBuilds,
    userRegistryGb: input.quotaRegistryGb,
    systemImages: input.systemQuotaImages,
    systemBuilds: input.systemQuotaBuilds,
    systemRegistryGb: input.systemQuotaRegistryGb,
    buildRetentionDays: input.buildRetentionDays,
    volumeGraceDays: input.volumeGraceDays,
  };
}

/** The settings as the flat fields of the form and the API. */
export function storageToInput(settings: StorageSettings): Record<string, number | null> {
  return {
    quotaImages: settings.userImages,
    quotaBuilds: settings.userBuilds,
    quotaRegistryGb: settings.userRegistryGb,
    systemQuotaImages: settings.systemImages,
    systemQuotaBuilds: settings.systemBuilds,
    systemQuotaRegistryGb: settings.systemRegistryGb,
    buildRetentionDays: settings.buildRetentionDays,
    volumeGraceDays: settings.volumeGraceDays,
  };
}
