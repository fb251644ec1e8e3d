/**
 * How images, checks and systems are shown: the API's JSON (each answer
 * with its zod schema) and the pages' view objects. Never a secret.
 */
import type { BuildView } from '../builds/service.js';
import { isBuildActive } from '../images/status.js';
import { BUILD_PHASES, BUILD_STATUSES } from '../builds/store.js';
import { BUILD_NETWORKS } from '../systems/schema.js';
import { z } from 'zod';
import { FindingSchema } from '../checks/report.js';
import { CHECK_STATUSES, isActive } from '../checks/status.js';
import type { CheckRow } from '../checks/store.js';
import type { ImageView, StartReadiness } from '../images/service.js';
import { IMAGE_STATUSES } from '../images/status.js';
import { formatDuration } from '../format.js';
import type { PublicationView, PublishedImageView, SharedImageView, SharesView } from '../sharing/service.js';
import type { System } from '../systems/schema.js';

/** "Preparing to start… 45 %", "Ready to start", or why it could not be prepared. */
function readinessText(start: StartReadiness): string {
  if (start.state === 'ready') return 'Ready to start';
  if (start.state === 'failed') return `Not prepared in advance (${start.message}); Start pulls the image`;
  return start.percent === null ? 'Preparing to start…' : `Preparing to start… ${start.percent} %`;
}

export const ImageResponseSchema = z.object({
  id: z.number().int().positive(),
  owner: z.string(),
  name: z.string(),
  system: z.object({ slug: z.string(), displayName: z.string(), enabled: z.boolean() }),
  imageInput: z.string(),
  image: z.string(),
  registry: z.string(),
  mountPath: z.string(),
  mountPathIsDefault: z.boolean(),
  credential: z.object({ registry: z.string(), username: z.string() }).nullable(),
  status: z.object({
    code: z.enum(IMAGE_STATUSES),
    label: z.string(),
    at: z.string().nullable(),
    checkId: z.number().int().nullable(),
  }),
  /** Checked images on a Docker system: pulled into the engine in advance, so that Start is fast. */
  start: z
    .object({
      state: z.enum(['preparing', 'ready', 'failed']),
      percent: z.number().int().nullable(),
      message: z.string().nullable(),
      text: z.string(),
    })
    .nullable(),
  warnings: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type ImageResponse = z.infer<typeof ImageResponseSchema>;

/** The API's form of an image: no secret, dates as ISO strings. */
export function presentImage(image: ImageView): ImageResponse {
  return ImageResponseSchema.parse({
    id: image.id,
    owner: image.owner,
    name: image.name,
    system: image.system,
    imageInput: image.referenceInput,
    image: image.reference,
    registry: image.registry,
    mountPath: image.mountPath,
    mountPathIsDefault: image.mountPathIsDefault,
    credential: image.credential ?? null,
    status: { ...image.status, at: image.status.at?.toISOString() ?? null, checkId: image.status.checkId ?? null },
    start: image.start
      ? {
          state: image.start.state,
          percent: image.start.state === 'preparing' ? image.start.percent : null,
          message: image.start.state === 'failed' ? image.start.message : null,
          text: readinessText(image.start),
        }
      : null,
    warnings: image.warnings,
    createdAt: image.createdAt.toISOString(),
    updatedAt: image.updatedAt.toISOString(),
  });
}

const StatusSchema = ImageResponseSchema.shape.status;

/** Someone else's image as a receiver sees it: no credential, no registry login, no check log. */
export const SharedImageResponseSchema = z.object({
  id: z.number().int().positive(),
  owner: z.string(),
  name: z.string(),
  system: z.object({ slug: z.string(), displayName: z.string(), enabled: z.boolean() }),
  image: z.string(),
  mountPath: z.string(),
  status: StatusSchema.omit({ checkId: true }),
  access: z.enum(['published', 'shared']),
  description: z.string(),
  groups: z.array(z.string()),
});

export function presentShared(image: SharedImageView): z.infer<typeof SharedImageResponseSchema> {
  return SharedImageResponseSchema.parse({
    ...image,
    image: image.reference,
    status: { code: image.status.code, label: image.status.label, at: image.status.at?.toISOString() ?? null },
  });
}

/** A publication: the digest published, and why it no longer serves (null while it does). */
const PublicationSchema = z.object({
  at: z.string(),
  by: z.string(),
  description: z.string(),
  digest: z.string().nullable(),
  withdrawn: z.string().nullable(),
});

function presentPublication(publication: PublicationView): z.infer<typeof PublicationSchema> {
  return { ...publication, at: publication.at.toISOString() };
}

/** With whom an image is shared, for its owner. */
export const SharesResponseSchema = z.object({
  groups: z.array(z.string()),
  published: PublicationSchema.nullable(),
  launchesByOthers: z.number().int(),
});

export function presentShares(shares: SharesView): z.infer<typeof SharesResponseSchema> {
  return SharesResponseSchema.parse({
    ...shares,
    published: shares.published ? presentPublication(shares.published) : null,
  });
}

/** A published image, for admins. */
export const PublishedImageResponseSchema = z.object({
  id: z.number().int().positive(),
  owner: z.string(),
  name: z.string(),
  system: z.object({ slug: z.string(), displayName: z.string(), enabled: z.boolean() }),
  image: z.string(),
  publication: PublicationSchema,
});

export function presentPublished(image: PublishedImageView): z.infer<typeof PublishedImageResponseSchema> {
  return PublishedImageResponseSchema.parse({ ...image, image: image.reference, publication: presentPublication(image.publication) });
}

export const CheckResponseSchema = z.object({
  id: z.number().int().positive(),
  imageId: z.number().int().nullable(),
  owner: z.string(),
  system: z.string(),
  image: z.string(),
  digest: z.string().nullable(),
  platform: z.string(),
  kind: z.enum(['static', 'full']),
  status: z.enum(CHECK_STATUSES),
  findings: z.array(FindingSchema),
  reusedFrom: z.number().int().nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  durationMs: z.number().int().nullable(),
  log: z.string(),
});

/** The API's form of a check. */
export function presentCheck(check: CheckRow): z.infer<typeof CheckResponseSchema> {
  return CheckResponseSchema.parse({
    id: check.id,
    imageId: check.imageId,
    owner: check.owner,
    system: check.system,
    image: check.reference,
    digest: check.digest,
    platform: check.platform,
    kind: check.kind,
    status: check.status,
    findings: check.findings,
    reusedFrom: check.reusedFrom,
    createdAt: check.createdAt.toISOString(),
    startedAt: check.startedAt?.toISOString() ?? null,
    finishedAt: check.finishedAt?.toISOString() ?? null,
    durationMs: check.durationMs,
    log: check.log,
  });
}

export const SystemResponseSchema = z.object({
  slug: z.string(),
  displayName: z.string(),
  description: z.string(),
  enabled: z.boolean(),
  allowedRegistries: z.array(z.string()),
  mountPrefixes: z.array(z.string()),
  defaultMountPath: z.string(),
  platform: z.string(),
  spawner: z.enum(['docker', 'kubernetes']),
  policy: z.object({
    runCheck: z.boolean(),
    uid: z.number().int(),
    uidMax: z.number().int().optional(),
    gid: z.number().int(),
    requireUser: z.boolean(),
    requirePip: z.boolean(),
    python: z.object({ min: z.string().optional(), max: z.string().optional() }),
  }),
  build: z.object({
    enabled: z.boolean(),
    pushTo: z.string(),
    network: z.enum(BUILD_NETWORKS),
    baseImages: z.array(z.object({ name: z.string(), image: z.string() })),
  }),
});

/** The API's form of a system. */
export function presentSystem(system: System): z.infer<typeof SystemResponseSchema> {
  return SystemResponseSchema.parse(system);
}

/** An image as its tile shows it: its status as images/status.ts decided it, and a link to its newest build. */
export function presentTile(image: ImageView, build?: BuildView) {
  return {
    ...image,
    build: build ? presentBuildPage(build) : undefined,
    startText: image.start ? readinessText(image.start) : undefined,
    busy: image.status.code === 'checking' || image.status.code === 'building' || image.start?.state === 'preparing',
  };
}

const VERDICT_TEXT: Record<CheckRow['status'], string> = {
  queued: 'Waiting for a free worker…',
  running: 'Checking…',
  passed: 'This image can run jupyterhub-singleuser',
  failed: 'This image cannot serve as a notebook server',
  error: 'The check could not be made',
};

/** A check as its page shows it: the verdict in words, errors first. */
export function presentCheckPage(check: CheckRow) {
  const order = { error: 0, warning: 1, info: 2 } as const;
  return {
    ...check,
    active: isActive(check.status),
    verdictText: VERDICT_TEXT[check.status],
    findings: [...check.findings].sort((a, b) => order[a.level] - order[b.level]),
    duration: formatDuration(check.durationMs),
    startedAt: (check.startedAt ?? check.createdAt).toISOString(),
  };
}

export const BuildResponseSchema = z.object({
  id: z.number().int().positive(),
  imageId: z.number().int().positive(),
  number: z.number().int().positive(),
  status: z.enum(BUILD_STATUSES),
  phase: z.enum(BUILD_PHASES).nullable(),
  /** What the tile says: "Building (step 2 of 5)", "Build failed at step 3". */
  label: z.string(),
  step: z.number().int(),
  steps: z.number().int(),
  /** Where the build is pushed: registry/repository:number. */
  image: z.string(),
  digest: z.string().nullable(),
  message: z.string().nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  durationMs: z.number().nullable(),
});

/** The API's form of a build (never its files' content or token). */
export function presentBuild(build: BuildView): z.infer<typeof BuildResponseSchema> {
  return BuildResponseSchema.parse({
    ...build,
    image: build.target,
    createdAt: build.createdAt.toISOString(),
    startedAt: build.startedAt?.toISOString() ?? null,
    finishedAt: build.finishedAt?.toISOString() ?? null,
  });
}

/** A system that builds, as the build form and API show it. */
export const BuildSystemResponseSchema = z.object({
  slug: z.string(),
  displayName: z.string(),
  network: z.enum(BUILD_NETWORKS),
  baseImages: z.array(z.object({ name: z.string(), image: z.string() })),
});

export function presentBuildSystem(system: System): z.infer<typeof BuildSystemResponseSchema> {
  return BuildSystemResponseSchema.parse({ ...system, ...system.build });
}

/** A build as its page, its history and its tile show it. */
export function presentBuildPage(build: BuildView) {
  return { ...build, active: isBuildActive(build.status), duration: formatDuration(build.durationMs) };
}
