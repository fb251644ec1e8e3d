/**
 * The service's configuration: one zod schema over the environment.
 *
 * This is the only module that reads `process.env` (see {@link loadConfig}).
 * JupyterHub's own variable names are kept, so a hub-managed service needs no
 * extra configuration; ours are prefixed `CUSTOM_IMAGES_`.
 */
import path from 'node:path';
import { z } from 'zod';
import { OPEN_POLICY, NO_BUILDS, type System } from './systems/schema.js';
import type { StorageDefaults } from './systems/storage.js';
import { DEFAULT_LINK_HOSTS, parseLinkHosts } from './links/link.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A URL path that starts and ends with `/`, as JupyterHub gives its prefixes. */
const urlPrefix = (what: string) => z.string().regex(/^\/(?:[^\s?#]*\/)?$/, `must be a URL path that starts and ends with "/" (${what})`);

const httpUrl = (what: string) =>
  z.string().refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), {
    message: `must be an http(s) URL (${what})`,
  });

/** One base64 key of 32 bytes, as `openssl rand -base64 32` prints. */
function parseCryptKeys(raw: string, ctx: z.RefinementCtx): Uint8Array[] {
  const keys: Uint8Array[] = [];
  for (const [index, part] of raw.split(';').entries()) {
    const text = part.trim();
    if (text === '') continue;
    const bytes = Buffer.from(text, 'base64');
    if (!/^[A-Za-z0-9+/=_-]+$/.test(text) || bytes.length !== 32) {
      ctx.addIssue({
        code: 'custom',
        message: `key ${index + 1} must be 32 bytes in base64 (openssl rand -base64 32); several keys are separated by ";"`,
      });
      return z.NEVER;
    }
    keys.push(new Uint8Array(bytes));
  }
  return keys;
}

/** Where the data goes when nothing says otherwise: an SQLite file under ./data. */
function defaultDatabaseUrl(cwd: string): string {
  return `sqlite://${path.resolve(cwd, 'data', 'custom-images.sqlite')}`;
}

const databaseUrl = z
  .string()
  .regex(
    /^(sqlite:\/\/.+|sqlite:.+|postgres(ql)?:\/\/.+)$/,
    'must be sqlite:///absolute/path.sqlite, sqlite:relative/path.sqlite or postgres://user:password@host/db',
  );

/** A comma-separated list in one variable. */
const commaList = (what: string) =>
  z
    .string()
    .transform((raw) =>
      raw
        .split(',')
        .map((part) => part.trim())
        .filter(Boolean),
    )
    .refine((list) => list.length > 0, { message: `must list ${what}` });

/** Hosts (`host` or `host:port`), comma-separated, in lower case; unset is none. */
const hostList = z
  .string()
  .default('')
  .transform((raw) =>
    raw
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );

function envSchema(cwd: string) {
  return z.object({
    JUPYTERHUB_API_URL: httpUrl("the hub's API, e.g. http://127.0.0.1:8081/hub/api"),
    JUPYTERHUB_API_TOKEN: z
      .string({ message: "is required: the service's API token, which JupyterHub sets for a managed service" })
      .min(1, "must not be empty: the service's API token"),
    JUPYTERHUB_CLIENT_ID: z.string().min(1).default('service-custom-images'),
    JUPYTERHUB_SERVICE_NAME: z.string().min(1).default('custom-images'),
    JUPYTERHUB_SERVICE_PREFIX: urlPrefix('e.g. /services/custom-images/').default('/services/custom-images/'),
    JUPYTERHUB_SERVICE_URL: httpUrl('where this service listens, e.g. http://127.0.0.1:10101').default('http://127.0.0.1:10101'),
    JUPYTERHUB_OAUTH_CALLBACK_URL: z.string().min(1).optional(),
    JUPYTERHUB_BASE_URL: urlPrefix("the hub's base URL, e.g. /").default('/'),
    JUPYTERHUB_PUBLIC_URL: httpUrl("the hub's address as the browser sees it, e.g. https://hub.example.org/").optional(),
    JUPYTERHUB_OAUTH_ACCESS_SCOPES: z
      .string()
      .optional()
      .transform((raw, ctx) => {
        if (raw === undefined || raw === '') return undefined;
        try {
          return z.array(z.string()).parse(JSON.parse(raw));
        } catch {
          ctx.addIssue({ code: 'custom', message: 'must be a JSON list of scopes, as JupyterHub sets it' });
          return z.NEVER;
        }
      }),
    CUSTOM_IMAGES_DATABASE_URL: databaseUrl.default(defaultDatabaseUrl(cwd)),
    CUSTOM_IMAGES_WORK_DIR: z
      .string()
      .default(path.resolve(cwd, 'data', 'work'))
      .transform((dir) => path.resolve(cwd, dir)),
    CUSTOM_IMAGES_CRYPT_KEY: z
      .string()
      .optional()
      .transform((raw, ctx) => (raw ? parseCryptKeys(raw, ctx) : [])),
    CUSTOM_IMAGES_COOKIE_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    CUSTOM_IMAGES_SESSION_HOURS: z.coerce.number().positive('must be a positive number of hours').default(8),
    CUSTOM_IMAGES_SESSION_MAX_HOURS: z.coerce.number().positive('must be a positive number of hours').default(24),
    CUSTOM_IMAGES_AUTH_CACHE_SECONDS: z.coerce.number().int().min(0, 'must be 0 or more seconds').default(300),
    CUSTOM_IMAGES_LOG_LEVEL: z.enum(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    DOCKER_HOST: z.string().min(1).optional(),
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: hostList,
    CUSTOM_IMAGES_MAX_IMAGE_GB: z.coerce.number().positive('must be a positive number of gigabytes').default(32),
    CUSTOM_IMAGES_REGISTRY_TIMEOUT_SECONDS: z.coerce
      .number()
      .int('must be a whole number of seconds')
      .min(1, 'must be 1 or more')
      .max(600)
      .default(30),
    CUSTOM_IMAGES_CHECK_CONCURRENCY: z.coerce.number().int().min(1, 'must be 1 or more').max(64).default(2),
    CUSTOM_IMAGES_CHECK_DEADLINE_SECONDS: z.coerce
      .number()
      .int('must be a whole number of seconds')
      .min(10, 'must be at least 10 seconds')
      .default(1200),
    CUSTOM_IMAGES_MAX_QUEUED_CHECKS_PER_USER: z.coerce.number().int().min(1, 'must be 1 or more').default(5),
    CUSTOM_IMAGES_MAX_STREAMS_PER_USER: z.coerce.number().int().min(1, 'must be 1 or more').default(4),
    CUSTOM_IMAGES_RUN_TIMEOUT_SECONDS: z.coerce.number().int().min(5, 'must be at least 5 seconds').default(60),
    CUSTOM_IMAGES_RUN_MEMORY_MB: z.coerce.number().int().min(64, 'must be at least 64 MB').default(1024),
    CUSTOM_IMAGES_RUN_PIDS: z.coerce.number().int().min(16, 'must be at least 16').default(256),
    CUSTOM_IMAGES_RUN_CHECKS: z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
      .default('true')
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),
    CUSTOM_IMAGES_KEEP_PULLED_IMAGES: z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
      .default('false')
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),
    CUSTOM_IMAGES_PULL_TIMEOUT_SECONDS: z.coerce
      .number()
      .int('must be a whole number of seconds')
      .min(10, 'must be at least 10 seconds')
      .default(1800),
    CUSTOM_IMAGES_PULLED_IMAGE_DAYS: z.coerce
      .number()
      .int('must be a whole number of days')
      .min(0, 'must be 0 (keep them) or more days')
      .default(14),
    CUSTOM_IMAGES_PULLED_IMAGES_GB: z.coerce.number().positive('must be a positive number of gigabytes').default(100),
    CUSTOM_IMAGES_BUILD_CONCURRENCY: z.coerce.number().int().min(1, 'must be 1 or more').max(16).default(1),
    CUSTOM_IMAGES_MAX_QUEUED_BUILDS_PER_USER: z.coerce.number().int().min(1, 'must be 1 or more').default(2),
    CUSTOM_IMAGES_BUILD_TIMEOUT_SECONDS: z.coerce
      .number()
      .int('must be a whole number of seconds')
      .min(10, 'must be at least 10 seconds')
      .default(1800),
    CUSTOM_IMAGES_BUILD_MEMORY_MB: z.coerce.number().int().min(256, 'must be at least 256 MB').default(4096),
    CUSTOM_IMAGES_BUILD_CPUS: z.coerce.number().positive('must be a positive number of CPUs').max(256).default(2),
    CUSTOM_IMAGES_BUILD_CGROUP_PARENT: z.preprocess(
      (v) => v || undefined,
      z
        .string()
        .regex(
          /^\/?[A-Za-z0-9_][A-Za-z0-9_.-]*(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$/,
          'must be a cgroup path such as /custom-images-build, or a systemd slice such as custom-images-build.slice',
        )
        .optional(),
    ),
    CUSTOM_IMAGES_BUILD_DISK_GB: z.coerce.number().positive('must be a positive number of gigabytes').default(20),
    CUSTOM_IMAGES_BUILD_MAX_IMAGE_GB: z.coerce.number().positive('must be a positive number of gigabytes').default(32),
    CUSTOM_IMAGES_BUILD_UPLOAD_MAX_KB: z.coerce.number().int().min(1, 'must be 1 or more').default(10240),
    CUSTOM_IMAGES_BUILD_GIT_MAX_MB: z.coerce.number().int().min(1, 'must be 1 or more').default(32),
    CUSTOM_IMAGES_BUILD_GIT_FILE_MAX_MB: z.coerce.number().int().min(1, 'must be 1 or more').default(16),
    CUSTOM_IMAGES_BUILD_CHECKOUT_MAX_MB: z.coerce.number().int().min(1, 'must be 1 or more').default(512),
    CUSTOM_IMAGES_BUILD_CHECKOUT_MAX_FILES: z.coerce.number().int().min(10, 'must be 10 or more').default(100_000),
    CUSTOM_IMAGES_BUILD_CONTEXT_MAX_MB: z.coerce.number().int().min(1, 'must be 1 or more').default(512),
    CUSTOM_IMAGES_TRUSTED_GIT_HOSTS: hostList,
    CUSTOM_IMAGES_LINK_HOSTS: z
      .string()
      .default(DEFAULT_LINK_HOSTS.map(([prefix, origin]) => `${prefix}=${origin}`).join(','))
      .transform((raw, ctx) => {
        const parsed = parseLinkHosts(raw);
        if ('hosts' in parsed) return parsed.hosts;
        ctx.addIssue({ code: 'custom', message: `must list short forms of git hosts, e.g. gh=https://github.com: ${parsed.error}` });
        return z.NEVER;
      }),
    CUSTOM_IMAGES_QUOTA_IMAGES: z.coerce.number().int().min(0, 'must be 0 (no limit) or more').default(50),
    CUSTOM_IMAGES_QUOTA_BUILDS: z.coerce.number().int().min(0, 'must be 0 (no limit) or more').default(50),
    CUSTOM_IMAGES_QUOTA_REGISTRY_GB: z.coerce.number().min(0, 'must be 0 (no limit) or more gigabytes').default(100),
    CUSTOM_IMAGES_BUILD_RETENTION_DAYS: z.coerce.number().min(0, 'must be 0 or more days').default(30),
    CUSTOM_IMAGES_VOLUME_GRACE_DAYS: z.coerce.number().min(0, 'must be 0 or more days').default(30),
    CUSTOM_IMAGES_CLEANUP_MINUTES: z.coerce
      .number()
      .int('must be a whole number of minutes')
      .min(0, 'must be 0 (only when an admin asks) or more minutes')
      .default(60),
    CUSTOM_IMAGES_SYSTEMS_FILE: z
      .string()
      .optional()
      .transform((v) => v || undefined),
    CUSTOM_IMAGES_SYSTEM_NAME: z.string().min(1).max(100).default('Default'),
    CUSTOM_IMAGES_ALLOWED_REGISTRIES: commaList('registry patterns such as docker.io/*,registry.example.com/team/* or *').default(['*']),
    CUSTOM_IMAGES_MOUNT_PREFIXES: commaList('absolute paths such as /home,/data')
      .refine((list) => list.every((p) => p.startsWith('/')), { message: 'must be absolute paths such as /home,/data' })
      .default(['/home', '/data', '/mnt', '/work', '/scratch']),
    CUSTOM_IMAGES_DEFAULT_MOUNT_PATH: z
      .string()
      .startsWith('/', 'must be an absolute path such as /home/jovyan/work')
      .default('/home/jovyan/work'),
    CUSTOM_IMAGES_PLATFORM: z
      .string()
      .regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, 'must be os/arch[/variant], e.g. linux/amd64')
      .default('linux/amd64'),
  });
}

/** The parsed configuration, in the names the code uses. */
export interface Config {
  hub: {
    apiUrl: string;
    apiToken: string;
    clientId: string;
    serviceName: string;
    /** Browser-facing hub URL, when the hub sits behind another address. */
    publicUrl: string | undefined;
    baseUrl: string;
    /** The callback exactly as registered at the hub (often a path only). */
    oauthCallbackUrl: string;
    /** A token must carry one of these scopes to use the service (JupyterHub >= 3). */
    accessScopes: string[];
  };
  service: {
    prefix: string;
    url: string;
    host: string;
    port: number;
    /** Cookies get `Secure` when the browser reaches the hub over https. */
    secureCookies: boolean;
    cookieSecret: string | undefined;
    /** Idle lifetime of a browser session. */
    sessionHours: number;
    /** Absolute lifetime of a browser session, however active. */
    sessionMaxHours: number;
  };
  databaseUrl: string;
  /** Where temporary files go (git checkouts, build contexts, uploads): on the data volume, not /tmp. */
  workDir: string;
  cryptKeys: Uint8Array[];
  /** The system offered until admins define systems. */
  defaultSystem: System;
  /** A JSON list of systems created at start-up when they do not exist yet. */
  systemsFile: string | undefined;
  checks: {
    /** Check jobs run at once by this replica. */
    concurrency: number;
    /** How long one check may take in all before it is stopped. */
    deadlineMs: number;
    /** Checks one user may have queued or running at once (all replicas). */
    maxQueuedPerUser: number;
    /** Progress streams one user may have open at once (per replica). */
    maxStreamsPerUser: number;
    run: { timeoutMs: number; memoryBytes: number; pids: number; outputBytes: number };
    /** Keep images pulled for run checks on the Docker host (faster spawns). */
    keepPulledImages: boolean;
    /** Start images in Docker when an engine is configured (false: registry checks only). */
    runImages: boolean;
  };
  /** Images built for researchers on the Docker engine. */
  builds: {
    concurrency: number;
    /** Builds one user may have queued or running at once (all replicas). */
    maxQueuedPerUser: number;
    timeoutMs: number;
    memoryBytes: number;
    cpus: number;
    /** The cgroup (with a pids limit set by the host admin) build steps run under; without one, nothing builds. */
    cgroupParent: string | undefined;
    /** What one build may write to the engine's disk (its layers and its running step's changes). */
    diskBytes: number;
    /** The largest image a build may make (unpacked, base included), checked before the push. */
    imageBytes: number;
    /** All files uploaded with one build together. */
    uploadBytes: number;
    /** The most a git fetch may receive. */
    gitMaxBytes: number;
    /** The largest object (a file, inflated) a repository may hold. */
    gitFileBytes: number;
    /** What a checkout may write to its work tree: bytes and entries. */
    checkoutBytes: number;
    checkoutFiles: number;
    /** The build context sent to the engine. */
    contextBytes: number;
    /** Git hosts (host[:port]) that may be on private addresses and plain http. */
    trustedGitHosts: string[];
  };
  /** Launch links (links/). */
  links: {
    /** The short forms' prefixes (`gh`) to a GitHub-style host's origin (`https://github.com`). */
    hosts: ReadonlyMap<string, string>;
  };
  /** Quotas and the clean-up of the site registry and of data volumes (server/storage/). */
  storage: {
    /** What a system's blank settings take. */
    defaults: StorageDefaults;
    /** How often the clean-up runs; 0: only when an admin asks. */
    everyMs: number;
  };
  /** Images in the Docker engine. */
  pulls: {
    /** How long one pull (a pre-pull, a run check's, a launch's) may take. */
    timeoutMs: number;
    /** Images the service pulled and no launch used this long are removed; 0 keeps them. */
    keepDays: number;
    /** What the images the service keeps in one engine may take together; the least recently started go first. */
    budgetBytes: number;
  };
  registries: {
    /** Registry hosts an admin allows on private addresses (and plain http), e.g. a site registry. */
    trusted: string[];
    /** Largest image (compressed) the check reads. */
    maxImageBytes: number;
    /** How long a registry may stay silent (no headers, no body bytes) before a request gives up. */
    timeoutMs: number;
  };
  authCacheSeconds: number;
  logLevel: (typeof LOG_LEVELS)[number];
  dockerHost: string | undefined;
}

/** Thrown by {@link parseConfig}: one line a problem, each naming the variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/**
 * Parses an environment into a {@link Config}.
 *
 * @throws ConfigError listing every problem, one line each.
 */
export function parseConfig(env: Record<string, string | undefined>, cwd: string = process.cwd()): Config {
  const result = envSchema(cwd).safeParse(env);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        const name = issue.path.join('.');
        const message =
          issue.code === 'invalid_type' && env[name] === undefined && !issue.message.startsWith('is required')
            ? 'is required'
            : issue.message;
        return `${name} ${message}`;
      }),
    );
  }
  const e = result.data;
  const serviceUrl = new URL(e.JUPYTERHUB_SERVICE_URL);
  const serviceName = e.JUPYTERHUB_SERVICE_NAME;
  return {
    hub: {
      apiUrl: e.JUPYTERHUB_API_URL.replace(/\/+$/, ''),
      apiToken: e.JUPYTERHUB_API_TOKEN,
      clientId: e.JUPYTERHUB_CLIENT_ID,
      serviceName,
      publicUrl: e.JUPYTERHUB_PUBLIC_URL,
      baseUrl: e.JUPYTERHUB_BASE_URL,
      oauthCallbackUrl: e.JUPYTERHUB_OAUTH_CALLBACK_URL ?? `${e.JUPYTERHUB_SERVICE_PREFIX}oauth_callback`,
      accessScopes: e.JUPYTERHUB_OAUTH_ACCESS_SCOPES ?? [`access:services!service=${serviceName}`, 'access:services'],
    },
    service: {
      prefix: e.JUPYTERHUB_SERVICE_PREFIX,
      url: e.JUPYTERHUB_SERVICE_URL,
      host: serviceUrl.hostname.replace(/^\[|\]$/g, ''),
      port: Number(serviceUrl.port || (serviceUrl.protocol === 'https:' ? 443 : 80)),
      secureCookies: e.JUPYTERHUB_PUBLIC_URL?.startsWith('https:') ?? false,
      cookieSecret: e.CUSTOM_IMAGES_COOKIE_SECRET,
      sessionHours: e.CUSTOM_IMAGES_SESSION_HOURS,
      sessionMaxHours: e.CUSTOM_IMAGES_SESSION_MAX_HOURS,
    },
    databaseUrl: e.CUSTOM_IMAGES_DATABASE_URL,
    workDir: e.CUSTOM_IMAGES_WORK_DIR,
    cryptKeys: e.CUSTOM_IMAGES_CRYPT_KEY,
    defaultSystem: {
      slug: 'default',
      displayName: e.CUSTOM_IMAGES_SYSTEM_NAME,
      description: '',
      enabled: true,
      allowedRegistries: e.CUSTOM_IMAGES_ALLOWED_REGISTRIES,
      mountPrefixes: e.CUSTOM_IMAGES_MOUNT_PREFIXES,
      defaultMountPath: e.CUSTOM_IMAGES_DEFAULT_MOUNT_PATH,
      platform: e.CUSTOM_IMAGES_PLATFORM,
      spawner: 'docker',
      policy: OPEN_POLICY,
      build: NO_BUILDS,
    },
    systemsFile: e.CUSTOM_IMAGES_SYSTEMS_FILE,
    checks: {
      concurrency: e.CUSTOM_IMAGES_CHECK_CONCURRENCY,
      deadlineMs: e.CUSTOM_IMAGES_CHECK_DEADLINE_SECONDS * 1000,
      maxQueuedPerUser: e.CUSTOM_IMAGES_MAX_QUEUED_CHECKS_PER_USER,
      maxStreamsPerUser: e.CUSTOM_IMAGES_MAX_STREAMS_PER_USER,
      run: {
        timeoutMs: e.CUSTOM_IMAGES_RUN_TIMEOUT_SECONDS * 1000,
        memoryBytes: e.CUSTOM_IMAGES_RUN_MEMORY_MB * 1024 * 1024,
        pids: e.CUSTOM_IMAGES_RUN_PIDS,
        outputBytes: 32 * 1024,
      },
      keepPulledImages: e.CUSTOM_IMAGES_KEEP_PULLED_IMAGES,
      runImages: e.CUSTOM_IMAGES_RUN_CHECKS,
    },
    builds: {
      concurrency: e.CUSTOM_IMAGES_BUILD_CONCURRENCY,
      maxQueuedPerUser: e.CUSTOM_IMAGES_MAX_QUEUED_BUILDS_PER_USER,
      timeoutMs: e.CUSTOM_IMAGES_BUILD_TIMEOUT_SECONDS * 1000,
      memoryBytes: e.CUSTOM_IMAGES_BUILD_MEMORY_MB * 1024 * 1024,
      cpus: e.CUSTOM_IMAGES_BUILD_CPUS,
      cgroupParent: e.CUSTOM_IMAGES_BUILD_CGROUP_PARENT,
      diskBytes: Math.round(e.CUSTOM_IMAGES_BUILD_DISK_GB * 1e9),
      imageBytes: Math.round(e.CUSTOM_IMAGES_BUILD_MAX_IMAGE_GB * 1e9),
      uploadBytes: e.CUSTOM_IMAGES_BUILD_UPLOAD_MAX_KB * 1024,
      gitMaxBytes: e.CUSTOM_IMAGES_BUILD_GIT_MAX_MB * 1024 * 1024,
      gitFileBytes: e.CUSTOM_IMAGES_BUILD_GIT_FILE_MAX_MB * 1024 * 1024,
      checkoutBytes: e.CUSTOM_IMAGES_BUILD_CHECKOUT_MAX_MB * 1024 * 1024,
      checkoutFiles: e.CUSTOM_IMAGES_BUILD_CHECKOUT_MAX_FILES,
      contextBytes: e.CUSTOM_IMAGES_BUILD_CONTEXT_MAX_MB * 1024 * 1024,
      trustedGitHosts: e.CUSTOM_IMAGES_TRUSTED_GIT_HOSTS,
    },
    links: {
      hosts: e.CUSTOM_IMAGES_LINK_HOSTS,
    },
    storage: {
      defaults: {
        userImages: e.CUSTOM_IMAGES_QUOTA_IMAGES,
        userBuilds: e.CUSTOM_IMAGES_QUOTA_BUILDS,
        userRegistryBytes: Math.round(e.CUSTOM_IMAGES_QUOTA_REGISTRY_GB * 1e9),
        buildRetentionDays: e.CUSTOM_IMAGES_BUILD_RETENTION_DAYS,
        volumeGraceDays: e.CUSTOM_IMAGES_VOLUME_GRACE_DAYS,
      },
      everyMs: e.CUSTOM_IMAGES_CLEANUP_MINUTES * 60_000,
    },
    pulls: {
      timeoutMs: e.CUSTOM_IMAGES_PULL_TIMEOUT_SECONDS * 1000,
      keepDays: e.CUSTOM_IMAGES_PULLED_IMAGE_DAYS,
      budgetBytes: Math.round(e.CUSTOM_IMAGES_PULLED_IMAGES_GB * 1e9),
    },
    registries: {
      trusted: e.CUSTOM_IMAGES_TRUSTED_REGISTRIES,
      maxImageBytes: Math.round(e.CUSTOM_IMAGES_MAX_IMAGE_GB * 1e9),
      timeoutMs: e.CUSTOM_IMAGES_REGISTRY_TIMEOUT_SECONDS * 1000,
    },
    authCacheSeconds: e.CUSTOM_IMAGES_AUTH_CACHE_SECONDS,
    logLevel: e.CUSTOM_IMAGES_LOG_LEVEL,
    dockerHost: e.DOCKER_HOST,
  };
}

/** A refused subset of the variables (commands that read only what they need): one line a problem, each naming its variable. */
function configError(error: z.ZodError): ConfigError {
  return new ConfigError(error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`));
}

/** The part of the configuration that commands without a hub (migrate, rotate-keys) need. */
export type StoreConfig = Pick<Config, 'databaseUrl' | 'cryptKeys' | 'logLevel'>;

/** Parses only the store's variables; used by CLI commands that never talk to the hub. */
function parseStoreConfig(env: Record<string, string | undefined>, cwd: string = process.cwd()): StoreConfig {
  const result = envSchema(cwd)
    .pick({ CUSTOM_IMAGES_DATABASE_URL: true, CUSTOM_IMAGES_CRYPT_KEY: true, CUSTOM_IMAGES_LOG_LEVEL: true })
    .safeParse(env);
  if (!result.success) throw configError(result.error);
  return {
    databaseUrl: result.data.CUSTOM_IMAGES_DATABASE_URL,
    cryptKeys: result.data.CUSTOM_IMAGES_CRYPT_KEY,
    logLevel: result.data.CUSTOM_IMAGES_LOG_LEVEL,
  };
}

/** Where the service listens, for `custom-images healthcheck` (a container's HEALTHCHECK). */
export interface ListenConfig {
  /** The health endpoint as the service itself reaches it (0.0.0.0 and :: are asked on loopback). */
  healthUrl: string;
}

function parseListenConfig(env: Record<string, string | undefined>): ListenConfig {
  const result = envSchema(process.cwd()).pick({ JUPYTERHUB_SERVICE_URL: true, JUPYTERHUB_SERVICE_PREFIX: true }).safeParse(env);
  if (!result.success) throw configError(result.error);
  const url = new URL(result.data.JUPYTERHUB_SERVICE_URL);
  if (url.hostname === '0.0.0.0') url.hostname = '127.0.0.1';
  if (url.hostname === '[::]') url.hostname = '[::1]';
  return { healthUrl: new URL(`${result.data.JUPYTERHUB_SERVICE_PREFIX}healthz`, url.origin).href };
}

/** Every environment variable the service reads (the table in the README, the manifests' env). */
export function configVariables(): string[] {
  return Object.keys(envSchema(process.cwd()).shape);
}

/** Reads the process environment; the one place that touches `process.env`. */
export function loadConfig(): Config {
  return parseConfig(process.env);
}

/** {@link parseStoreConfig} over the process environment. */
export function loadStoreConfig(): StoreConfig {
  return parseStoreConfig(process.env);
}

/** {@link parseListenConfig} over the process environment. */
export function loadListenConfig(): ListenConfig {
  return parseListenConfig(process.env);
}
