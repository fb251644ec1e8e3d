/**
 * The one schema of a build request, shared by the form and the JSON API:
 * raw fields and uploaded files in, a {@link BuildRecipe} out, or issues that
 * each name their field. The build's own inputs are builds/inputs.ts's; this
 * adds the image's name, system and mount path, the token and the rules
 * that need a system. Pure: what needs the database (unique names, the
 * stored token) comes in through the context.
 */
import { z } from 'zod';
import { DescriptionSchema } from '../images/schema.js';
import { checkMountPath, MOUNT_PATH_MAX_LENGTH } from '../systems/mountPath.js';
import { gitHostProblem, type System } from '../systems/schema.js';
import { dockerfileProblems } from './dockerfile.js';
import { formatKiB } from '../format.js';
import { BUILD_INPUT_KEYS, BuildInputsSchema, type BuildInputs } from './inputs.js';
import { parseDirectory } from './contextDirectory.js';
import { aptPackages, environmentProblems, packagesDockerfile, requirementProblems } from './packages.js';

export { BUILD_MODES, type BuildMode } from './inputs.js';

/** A file uploaded as part of the build context. */
export interface UploadedFile {
  name: string;
  content: Buffer;
}

/** A file of the build context as the rules see it: its name and size (an upload, or a file a rebuild keeps). */
export interface ContextFileSummary {
  name: string;
  size: number;
}

/** A build request: the image's name, system and mount path, the build's inputs, and the git token. */
export const BuildInputSchema = z.object({
  name: z.string({ message: 'Enter a name' }).trim().default(''),
  /** The image's description (a built image is an image); not a build input. */
  description: DescriptionSchema,
  system: z.string({ message: 'Choose a system' }).trim().min(1, 'Choose a system'),
  mountPath: z.string().max(MOUNT_PATH_MAX_LENGTH, `The mount path has at most ${MOUNT_PATH_MAX_LENGTH} characters`).default(''),
  ...BuildInputsSchema.shape,
  gitToken: z.string().max(4096, 'The access token has at most 4096 characters').default(''),
});

export type BuildField = keyof z.input<typeof BuildInputSchema> | 'files';

/** What to do with the git token: none, the one stored with the previous build, or a new one. */
export type TokenChange = { action: 'none' } | { action: 'keep' } | { action: 'set'; token: string };

export interface GitSource {
  url: string;
  /** The directory with the Dockerfile, the context: normalised (builds/contextDirectory.ts), '' for the top. */
  directory: string;
  /** Branch, tag or commit; blank: the repository's default branch. */
  ref: string;
  username: string;
  token: TokenChange;
}

/** A validated build request. */
export interface BuildRecipe {
  name: string;
  /** The image's description, plain text ('' for none). */
  description: string;
  system: System;
  mountPath: string | null;
  /**
   * The inputs as stored with the build: the base image's image (not its
   * name), packages only in the packages mode, the Dockerfile written for
   * them, the repository's URL normalised.
   */
  inputs: BuildInputs;
  files: ContextFileSummary[];
  git: GitSource | null;
}

export interface BuildLimits {
  dockerfileBytes: number;
  /** All uploaded files together. */
  uploadBytes: number;
  uploadFiles: number;
}

export interface BuildSchemaContext {
  /** The systems the user may build on (enabled, building on). */
  systems: readonly System[];
  files: ContextFileSummary[];
  limits: BuildLimits;
  /** A git host (host[:port]) an admin trusts: it may be on a private address and plain http. */
  gitHostTrusted: (host: string) => boolean;
  /** The git source of the build this one repeats, when a rebuild leaves the token blank. */
  previousGit?: { url: string; hasToken: boolean } | undefined;
}

/** The name is a path component of the pushed image: `…/<user>/<name>:<build>`. */
const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const GIT_REF = /^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]+$/;
const FILE_NAME = /^(?!\.\.?$)[A-Za-z0-9._+-][A-Za-z0-9 ._+-]*$/;

export function buildInputSchema(context: BuildSchemaContext) {
  return BuildInputSchema.transform((raw, ctx): BuildRecipe => {
    const issue = (field: BuildField, message: string) => ctx.addIssue({ code: 'custom', path: [field], message });

    if (raw.name === '') issue('name', 'Enter a name for the image, e.g. my-env');
    else if (raw.name.length > 64 || !NAME.test(raw.name)) {
      issue(
        'name',
        'The name becomes part of the image path: lower-case letters and digits, with . _ - between them, at most 64 characters, e.g. my-env',
      );
    }
    const system = context.systems.find((s) => s.slug === raw.system);
    if (!system) {
      issue(
        'system',
        `Choose a system that builds images: ${context.systems.map((s) => s.displayName).join(', ') || 'none does (ask the hub admin)'}`,
      );
    }

    let mountPath: string | null = null;
    if (raw.mountPath.trim() !== '' && system) {
      const checked = checkMountPath(raw.mountPath, system.mountPrefixes);
      if (checked.ok) mountPath = checked.path;
      else issue('mountPath', checked.message);
    }

    const files = context.files;
    const total = files.reduce((sum, f) => sum + f.size, 0);
    if (files.length > context.limits.uploadFiles)
      issue('files', `Upload at most ${context.limits.uploadFiles} files (${files.length} given)`);
    if (total > context.limits.uploadBytes) {
      issue(
        'files',
        `The uploaded files have ${formatKiB(total)} together; at most ${formatKiB(context.limits.uploadBytes)} are allowed. Put larger inputs in a git repository.`,
      );
    }
    const names = new Set<string>();
    for (const file of files) {
      if (!FILE_NAME.test(file.name) || file.name.length > 200)
        issue('files', `"${file.name}" is not a plain file name (letters, digits, . _ + - and spaces)`);
      else if (names.has(file.name)) issue('files', `"${file.name}" is uploaded twice`);
      names.add(file.name);
    }

    let base: string | null = null;
    let dockerfile = raw.dockerfile;
    const apt = aptPackages(raw.apt);
    if (raw.mode === 'packages') {
      const offered = system?.build.baseImages ?? [];
      const chosen = offered.find((b) => b.image === raw.base || b.name === raw.base);
      if (raw.base === '')
        issue('base', `Choose a base image: ${offered.map((b) => b.name).join(', ') || 'the system offers none (ask the hub admin)'}`);
      else if (!chosen)
        issue(
          'base',
          `"${raw.base}" is not a base image of this system; choose one of: ${offered.map((b) => b.name).join(', ') || 'none is offered'}`,
        );
      else base = chosen.image;
      for (const problem of requirementProblems(raw.pip)) issue('pip', problem);
      for (const problem of environmentProblems(raw.conda)) issue('conda', problem);
      for (const problem of apt.problems) issue('apt', problem);
      dockerfile = base
        ? packagesDockerfile({ base, pip: raw.pip, conda: raw.conda, apt: apt.packages, files: files.map((f) => f.name) })
        : '';
    } else if (raw.mode === 'repository') {
      // Built by repo2docker's rules from the commit fetched (builds/repo2docker.ts): a base image the system offers.
      const offered = system?.build.baseImages ?? [];
      const chosen = raw.base === '' ? offered[0] : offered.find((b) => b.image === raw.base || b.name === raw.base);
      if (raw.gitUrl === '') issue('gitUrl', 'Enter the repository to build, e.g. https://github.com/lab/paper.git');
      if (system && !chosen)
        issue(
          'base',
          raw.base === ''
            ? `${system.displayName} offers no base image to build a repository on (ask the hub admin)`
            : `"${raw.base}" is not a base image of this system; choose one of: ${offered.map((b) => b.name).join(', ') || 'none is offered'}`,
        );
      base = chosen?.image ?? null;
      dockerfile = '';
    } else if (raw.dockerfile.trim() === '') {
      // With a repository, its own Dockerfile is built (checked when it has been fetched).
      if (raw.gitUrl === '')
        issue('dockerfile', "Enter the Dockerfile, or name a git repository and leave this blank to build the repository's Dockerfile");
      dockerfile = '';
    } else if (system) {
      const rules = {
        allowedRegistries: system.allowedRegistries,
        systemName: system.displayName,
        maxBytes: context.limits.dockerfileBytes,
      };
      for (const problem of dockerfileProblems(raw.dockerfile, rules)) issue('dockerfile', problem);
    }

    const git = gitSource(raw, context, issue);
    const hostProblem = git && system ? gitHostProblem(system, new URL(git.url).host) : undefined;
    if (hostProblem) issue('gitUrl', hostProblem);
    if (git && files.length > 0) issue('files', 'Upload files or name a git repository as the build context, not both');
    if (git && raw.mode === 'packages') issue('gitUrl', 'A git repository is the context of a Dockerfile; switch to the Dockerfile mode');

    const given = Object.fromEntries(BUILD_INPUT_KEYS.map((key) => [key, raw[key]])) as BuildInputs;
    return {
      name: raw.name,
      description: raw.description,
      system: system as System,
      mountPath,
      inputs: {
        ...given,
        base: base ?? '',
        pip: raw.mode === 'packages' ? raw.pip : '',
        conda: raw.mode === 'packages' ? raw.conda : '',
        apt: raw.mode === 'packages' ? apt.packages.join(' ') : '',
        dockerfile,
        gitUrl: git?.url ?? '',
        gitRef: git?.ref ?? '',
        gitUsername: git?.username ?? '',
        gitDirectory: git?.directory ?? '',
      },
      files,
      git,
    };
  });
}

/** The git context of a request, or null; issues name the git fields. */
function gitSource(
  raw: z.output<typeof BuildInputSchema>,
  context: BuildSchemaContext,
  issue: (field: BuildField, message: string) => void,
): GitSource | null {
  if (raw.gitUrl === '') {
    if (raw.gitToken !== '') issue('gitUrl', 'An access token goes with a repository: enter its URL');
    if (raw.gitDirectory.trim() !== '')
      issue('gitDirectory', 'A directory with the Dockerfile is a directory of a repository: enter its URL');
    return null;
  }
  const directory = parseDirectory(raw.gitDirectory);
  if (!directory.ok) issue('gitDirectory', directory.message);
  let url: URL;
  try {
    url = new URL(raw.gitUrl);
  } catch {
    issue('gitUrl', 'Enter the repository as an https URL, e.g. https://github.com/lab/env.git');
    return null;
  }
  if (url.username || url.password) {
    issue('gitUrl', 'Put no credentials in the URL: enter the access token in its own field, where it is stored encrypted');
    return null;
  }
  const trusted = context.gitHostTrusted(url.host);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && trusted)) {
    issue('gitUrl', 'The repository URL starts with https://');
    return null;
  }
  if (url.search || url.hash) issue('gitUrl', 'The repository URL has no ?query or #fragment');
  if (raw.gitRef !== '' && !GIT_REF.test(raw.gitRef)) {
    issue('gitRef', 'A branch, tag or commit: letters, digits, . _ / -, e.g. main, v1.2 or a commit id');
  }
  const previous = context.previousGit;
  const token: TokenChange =
    raw.gitToken !== ''
      ? { action: 'set', token: raw.gitToken }
      : previous?.hasToken && previous.url === url.href
        ? { action: 'keep' }
        : { action: 'none' };
  return { url: url.href, ref: raw.gitRef, username: raw.gitUsername, token, directory: directory.ok ? directory.directory : '' };
}
