/**
 * Builds as the API answers them (each answer parsed by its schema) and as
 * their page, history and tile show them. Never a file's content or a token.
 */
import { z } from 'zod';
import type { BuildDetails, BuildInputsView, BuildView } from '../../builds/service.js';
import { BuildInputsSchema } from '../../builds/inputs.js';
import { BUILD_PHASES, BUILD_STATUSES } from '../../builds/store.js';
import { formatDuration } from '../../format.js';
import { isBuildActive } from '../../images/status.js';
import { BUILD_NETWORKS, type System } from '../../systems/schema.js';
import type { ImageView } from '../../images/service.js';
import { ImageResponseSchema, presentImage } from './images.js';

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
  /** The commit a repository build checked out, once fetched. */
  gitCommit: z.string().nullable(),
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

/**
 * The inputs of a build as the API shows them (every input of
 * builds/inputs.ts): the token only as "stored", files by name and size.
 * The base image and the repository's fields are null when not given, as
 * the API answered before the inputs were one JSON column.
 */
export const BuildInputsResponseSchema = BuildInputsSchema.extend({
  base: z.string().nullable(),
  gitUrl: z.string().nullable(),
  gitRef: z.string().nullable(),
  /** The repository's directory with the Dockerfile, the context; null: the top. */
  gitDirectory: z.string().nullable(),
  gitUsername: z.string().nullable(),
  files: z.array(z.object({ name: z.string(), size: z.number().int() })),
  gitTokenStored: z.boolean(),
  gitCommit: z.string().nullable(),
  /** A repository build's start script (runs at every server start, before the notebook server), or null. */
  start: z.string().nullable(),
});

function presentInputs(inputs: BuildInputsView): z.input<typeof BuildInputsResponseSchema> {
  const orNull = (value: string) => (value === '' ? null : value);
  return {
    ...inputs,
    base: orNull(inputs.base),
    gitUrl: orNull(inputs.gitUrl),
    gitRef: orNull(inputs.gitRef),
    gitDirectory: orNull(inputs.gitDirectory),
    gitUsername: orNull(inputs.gitUsername),
  };
}

/** One build with its log and inputs. */
export const BuildDetailsResponseSchema = BuildResponseSchema.extend({ log: z.string(), inputs: BuildInputsResponseSchema });

export function presentBuildDetails(details: BuildDetails): z.infer<typeof BuildDetailsResponseSchema> {
  return BuildDetailsResponseSchema.parse({ ...presentBuild(details.build), log: details.log, inputs: presentInputs(details.inputs) });
}

/** A new built image and its first build (202). */
/** `reused`: a repository build of a commit built already answers that build (builds/service.ts); no new build. */
export const BuildCreatedResponseSchema = z.object({ image: ImageResponseSchema, build: BuildResponseSchema, reused: z.boolean() });

export function presentBuildCreated(created: {
  image: ImageView;
  build: BuildView;
  reused?: true;
}): z.infer<typeof BuildCreatedResponseSchema> {
  return BuildCreatedResponseSchema.parse({
    image: presentImage(created.image),
    build: presentBuild(created.build),
    reused: created.reused ?? false,
  });
}

/** A build as its page, its history and its tile show it. */
export type BuildPage = ReturnType<typeof presentBuildPage>;

export function presentBuildPage(build: BuildView) {
  return {
    ...build,
    active: isBuildActive(build.status),
    duration: formatDuration(build.durationMs),
    // The commit a repository build checked out, as git abbreviates it (the whole one in the title).
    commitShort: build.gitCommit?.slice(0, 12) ?? null,
  };
}
