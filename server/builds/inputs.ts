/**
 * The inputs of a build: what a rebuild repeats, apart from the uploaded
 * files (the store keeps them) and the git token (sealed in columns of its
 * own). One type, parsed by one schema wherever inputs come from — a
 * request (builds/recipe.ts extends the schema with the image's name,
 * system and mount path and the token), a stored build (the JSON column
 * `inputs` of `builds`) — and mapped to the form and back here. A new input
 * is a key of {@link BuildInputsSchema} and a field in the form's template;
 * requests, storage (old rows get its default), rebuilds, the form and the
 * API answer follow. Keys are the form's and the API's field names.
 */
import { z } from 'zod';

/** packages: base image + packages; dockerfile: a Dockerfile (typed, or the repository's); repository: repo2docker's rules (builds/repo2docker.ts). */
export const BUILD_MODES = ['packages', 'dockerfile', 'repository'] as const;
export type BuildMode = (typeof BUILD_MODES)[number];

const TEXT_MAX = 64 * 1024;

export const BuildInputsSchema = z.object({
  mode: z
    .enum(BUILD_MODES, {
      message: "The mode is packages (base image + packages), dockerfile, or repository (a repository built by repo2docker's rules)",
    })
    .default('packages'),
  /** The base image (packages and repository modes): as chosen in a request (its name or image), its image once stored. */
  base: z.string().trim().max(600).default(''),
  pip: z.string().max(TEXT_MAX, 'The requirements have at most 64 KiB').default(''),
  conda: z.string().max(TEXT_MAX, 'environment.yml has at most 64 KiB').default(''),
  apt: z.string().max(8192, 'The package list has at most 8 KiB').default(''),
  /** What is built: the researcher's Dockerfile, or once stored the one written for the packages; blank: the repository's own. */
  dockerfile: z.string().default(''),
  gitUrl: z.string().trim().max(2048, 'The repository URL has at most 2048 characters').default(''),
  /** Branch, tag or commit; blank: the repository's default branch. */
  gitRef: z.string().trim().max(255, 'The branch, tag or commit has at most 255 characters').default(''),
  gitUsername: z.string().trim().max(255, 'The git username has at most 255 characters').default(''),
  /** The repository's directory that holds the Dockerfile and is the context (builds/contextDirectory.ts); blank: the top. */
  gitDirectory: z.string().max(1024, 'The directory in the repository has at most 1024 characters').default(''),
});

/** A build's inputs, blank ('') where not given. */
export type BuildInputs = z.output<typeof BuildInputsSchema>;

/** The keys of {@link BuildInputs}: what a form or request field is, when it is an input. */
export const BUILD_INPUT_KEYS = BuildInputsSchema.keyof().options;

/** Stored inputs (the JSON column `inputs`, parsed or not), as a build row has them. */
export function storedInputs(stored: unknown): BuildInputs {
  return BuildInputsSchema.parse(typeof stored === 'string' ? JSON.parse(stored) : stored);
}

/** Inputs as the JSON column `inputs` stores them. */
export function inputsColumn(inputs: BuildInputs): string {
  return JSON.stringify(inputs);
}

/**
 * The inputs a rebuild sends again, as a request's fields: a Dockerfile the
 * service wrote for the packages is written again from them (the base image
 * or the packages' rules may have changed), unless `mode` takes it over as
 * the researcher's own ("Use this Dockerfile instead").
 */
export function inputsAsRequest(inputs: BuildInputs, mode?: string): BuildInputs {
  // A repository's Dockerfile is written again at each build, from the commit fetched then.
  if (inputs.mode === 'repository') return { ...inputs, dockerfile: '' };
  const takeOver = mode === 'dockerfile' && inputs.mode === 'packages';
  const own = inputs.mode === 'dockerfile' || takeOver;
  return { ...inputs, mode: own ? 'dockerfile' : 'packages', dockerfile: own ? inputs.dockerfile : '' };
}

/** The input fields of a form or request body as typed, strings only (to show them back; never the token). */
export function inputsAsTyped(body: Record<string, unknown>): Record<keyof BuildInputs, string> {
  return Object.fromEntries(BUILD_INPUT_KEYS.map((key) => [key, typeof body[key] === 'string' ? body[key] : ''])) as Record<
    keyof BuildInputs,
    string
  >;
}
