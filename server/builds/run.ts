/**
 * One build, from its claim to its end: the context (uploads, the git
 * repository fetched through the address guard, the Dockerfile typed or the
 * repository's own), the build on the builder, the push, then the image
 * points at the pushed build and its check is queued. Progress and log are
 * stored as it goes (any replica can show them); the token of a private
 * repository is redacted from everything stored.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { upstream } from '../errors.js';
import type { ImageStore } from '../images/store.js';
import type { RunningJob } from '../jobs/running.js';
import type { Logger } from '../log.js';
import type { RegistryClient } from '../registry/client.js';
import { parseReference, registryAuthKey, type ImageReference } from '../registry/reference.js';
import { BoundedOutput } from '../io/boundedOutput.js';
import type { Keyring } from '../secrets/keyring.js';
import type { System, SystemCatalog } from '../systems/schema.js';
import type { BuildLimits as BuilderLimits, ImageBuilder, RegistryLogin } from './builder.js';
import { buildContext, CONTEXT_DOCKERFILE } from './context.js';
import { checkBaseTriggers } from './baseTriggers.js';
import { dockerfileImages, dockerfileProblems, pinBaseImages, type PulledImage } from './dockerfile.js';
import { buildFailureMessage } from './failure.js';
import { labelledDockerfile, layerMarker } from './layerLabel.js';
import { formatKiB } from '../format.js';
import type { GitFetcher } from './git.js';
import { inputsColumn } from './inputs.js';
import { repositoryBuild, type BaseFacts, type RepositoryBuild } from './repo2docker.js';
import { repositoryOnDisk } from './repositoryFiles.js';
import type { BuildLimits } from './recipe.js';
import type { WorkDir } from '../workDir.js';
import type { BuildPhase, BuildRow, BuildStatus, BuildStore } from './store.js';

export interface BuildRunDeps {
  store: BuildStore;
  imageStore: ImageStore;
  systems: SystemCatalog & {
    /** The site's login for `user`'s pull or push of `reference`; never for another user's build. */
    credentialFor(reference: ImageReference, user: string): Promise<RegistryLogin | undefined>;
    /** Why `user` may not build from `reference` (another user's build), in words; undefined when they may. */
    builtImageProblem(reference: ImageReference, user: string): Promise<string | undefined>;
  };
  keyring: Keyring;
  registry: Pick<RegistryClient, 'assertEngineMayPull' | 'session'>;
  git: GitFetcher;
  /** Undefined without a Docker engine: builds wait for a replica that has one. */
  builder: ImageBuilder | undefined;
  /** Queues the check of a freshly built image. */
  check: (owner: string, imageId: number) => Promise<unknown>;
  limits: BuildLimits & {
    /** The context sent to the engine. */
    contextBytes: number;
  };
  builderLimits: BuilderLimits;
  /** Where git checkouts go (the data volume, not /tmp). */
  workDir: WorkDir;
  logger: Logger;
  now?: () => Date;
}

const LOG_BYTES = 256 * 1024;

/** The associated data of a build's git token: bound to its image and owner (rebuilds carry it over). */
export function tokenAssociatedData(imageId: number, owner: string): string {
  return `custom-images/git-token/v1/${imageId}/${owner}`;
}

/** What a running build shows: its phase and step (and the commit it builds, once fetched). */
interface BuildState {
  phase: BuildPhase;
  step: number;
  steps: number;
  gitCommit?: string;
}

/** Runs a claimed build to its end and stores how it ended: queued again when the replica stops. */
export async function runBuild(deps: BuildRunDeps, job: BuildRow, held: RunningJob): Promise<BuildStatus> {
  const { store, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const secrets: string[] = [];
  const output = new BoundedOutput(LOG_BYTES);
  const redact = (text: string) => secrets.reduce((t, s) => t.split(s).join('***'), text);
  const log = (text: string) => output.add(redact(text));
  const state: BuildState = { phase: 'context', step: 0, steps: 0 };
  // A repository build's inputs once its Dockerfile is written: the build page shows what was built.
  let written: Record<string, string> = {};
  const save = (patch: Partial<BuildState> = {}) => {
    Object.assign(state, patch);
    held.progress(() => ({
      phase: state.phase,
      step: state.step,
      steps: state.steps,
      ...(state.gitCommit ? { git_commit: state.gitCommit } : {}),
      ...written,
      log: output.toString(),
    }));
  };
  let tree: string | undefined;
  let context: Readable | undefined;
  // Before a build is shown as ended, its temporary files are gone (and again in `finally`, whatever happened).
  const removeTemporaryFiles = () => {
    // A build that ended before the engine read all of the context: its files are closed.
    context?.destroy();
    if (tree) deps.workDir.remove(tree);
  };
  const end = async (status: 'succeeded' | 'failed', message: string | null, digest?: string): Promise<BuildStatus> => {
    removeTemporaryFiles();
    if (held.stopReason === 'stop' && status === 'failed') {
      // Stopped for a restart, not by the build: another replica (or this one, started again) takes it.
      log('The service stopped during the build; it is queued again.\n');
      await held.requeue({ log: output.toString() });
      return 'queued';
    }
    if (message) log(`${message}\n`);
    await held.finish({ status, phase: null, message, digest: digest ?? null, ...written, log: output.toString(), finished_at: now() });
    return status;
  };
  try {
    const builder = deps.builder;
    if (!builder) return await end('failed', 'This replica has no Docker engine to build with.');
    const image = await deps.imageStore.get(job.owner, job.imageId);
    if (!image) return await end('failed', 'The image was deleted.');
    const system = await deps.systems.get(image.system);
    if (!system?.build.enabled)
      return await end('failed', `Building is turned off on ${system?.displayName ?? image.system}; ask the hub admin.`);
    // A system may have had building on before it needed a limit on processes: it builds nothing until the host has one.
    if (!deps.builderLimits.cgroupParent)
      return await end(
        'failed',
        'This service builds nothing yet: build steps would have no limit on processes. Ask the hub admin to set one up (CUSTOM_IMAGES_BUILD_CGROUP_PARENT).',
      );
    save({ phase: 'context' });
    const prepared = builder.prepare();
    if (job.attempts > 1) log('The service restarted during the last attempt; building again from the start.\n');
    const files = await store.contents(job.id);
    const { inputs } = job;
    // A repository build's base image config is read while the repository is fetched (both wait on the network).
    // Each image's configs are read once a build: the written Dockerfile and the trigger check (whose digest
    // the build is pinned to) see the same base.
    const configsRead = new Map<string, ReturnType<typeof readConfigs>>();
    const readConfigs = (reference: ImageReference) =>
      deps.systems.credentialFor(reference, job.owner).then((login) => deps.registry.session(reference, login, held.signal).imageConfigs());
    const imageConfigs = (reference: ImageReference) => {
      const known = configsRead.get(reference.normalized) ?? readConfigs(reference);
      configsRead.set(reference.normalized, known);
      return known;
    };
    const baseConfig = inputs.mode === 'repository' ? settled(readBaseConfig(imageConfigs, system, job)) : undefined;
    if (inputs.gitUrl) {
      const token = job.gitToken ? deps.keyring.open(job.gitToken, tokenAssociatedData(job.imageId, job.owner)) : undefined;
      if (token) secrets.push(token);
      log(`Fetching ${inputs.gitUrl}${inputs.gitRef ? ` at ${inputs.gitRef}` : ''}\n`);
      const fetched = await deps.git.fetch({
        url: inputs.gitUrl,
        ref: inputs.gitRef,
        username: inputs.gitUsername,
        token,
        signal: held.signal,
        // Looked up again in the commit fetched now: the branch may have moved since the build was submitted.
        directory: inputs.gitDirectory,
        hosts: system.build.gitHosts,
      });
      tree = fetched.dir;
      // The branch was resolved when the build was requested; it may have moved while the build waited.
      if (job.gitCommit && job.gitCommit !== fetched.commit)
        log(`The branch moved since the build was requested (it was at ${job.gitCommit.slice(0, 12)}): building its newest commit\n`);
      log(`Checked out commit ${fetched.commit}\n`);
      save({ gitCommit: fetched.commit });
    }
    // The context is the directory with the Dockerfile (checked by the fetch: inside the tree, no link on its path).
    const contextTree = tree && inputs.gitDirectory ? path.join(tree, inputs.gitDirectory) : tree;
    let dockerfile = inputs.dockerfile;
    const fromRepository = dockerfile === '';
    if (inputs.mode === 'repository') {
      const built = repositoryMode(system, job, contextTree, await (baseConfig as Promise<() => BaseConfig>));
      if (built.kind === 'refused') return await end('failed', `The repository cannot be built here: ${built.problems.join('; ')}`);
      dockerfile = built.kind === 'dockerfile' ? built.text : built.dockerfile;
      // The written Dockerfile is kept to be shown; the repository's own is the repository's (read again at each
      // build), never kept as one the service wrote: the page would take its comments for ours.
      written = { inputs: inputsColumn({ ...inputs, dockerfile: built.kind === 'written' ? built.dockerfile : '' }) };
      if (built.kind === 'dockerfile') log(`Building ${built.path}: a Dockerfile wins over the other configuration files\n`);
      else {
        log(`Honouring ${built.honoured.join(', ') || 'no configuration file (the repository is copied to the home)'}\n`);
        if (built.start) log(`${built.start} runs at every server start, before jupyterhub-singleuser\n`);
        log(`The Dockerfile written for the repository:\n${built.dockerfile}\n`);
      }
    } else if (fromRepository) dockerfile = repositoryDockerfile(contextTree, inputs.gitDirectory, deps.limits.dockerfileBytes);
    // The repository's own Dockerfile, under the same rules as one typed in the form; a typed one again,
    // as the system's rules are now (a rebuild runs a Dockerfile checked under older ones).
    const rules = { allowedRegistries: system.allowedRegistries, systemName: system.displayName, maxBytes: deps.limits.dockerfileBytes };
    const problems = dockerfileProblems(dockerfile, rules);
    if (problems.length > 0)
      return await end(
        'failed',
        `${fromRepository ? "The repository's Dockerfile" : 'The Dockerfile'} cannot be built here: ${problems.join('; ')}`,
      );
    if (fromRepository && inputs.mode !== 'repository')
      log(`Building the repository's Dockerfile${inputs.gitDirectory ? ` in ${inputs.gitDirectory}` : ''}\n`);
    const pulled = dockerfileImages(dockerfile).images;
    // Another user's build is never read with the site's credential, not even for its triggers: refused
    // before any registry hears of it (a typed Dockerfile was held to this when it was submitted).
    const notOwn = await notOwnImage(deps, job.owner, pulled);
    if (notOwn) return await end('failed', `The Dockerfile cannot be built here: ${notOwn}`);
    // Base images' build triggers run in this build: held to the same rules before the engine sees anything,
    // and the engine builds from the digests that were checked.
    const { pins, images: triggered } = await checkBaseTriggers(
      { registry: deps.registry, credentialFor: (r) => deps.systems.credentialFor(r, job.owner), imageConfigs },
      pulled,
      rules,
      held.signal,
    );
    const notOwnTriggered = await notOwnImage(deps, job.owner, triggered);
    if (notOwnTriggered) return await end('failed', `A base image's build trigger cannot run here: ${notOwnTriggered}`);
    // Every layer the engine commits carries the image's label: how the builder knows its own (builds/layerLabel.ts).
    const marker = layerMarker((secret) => deps.keyring.fingerprint(secret), job.imageId);
    const labelled = labelledDockerfile(pinBaseImages(dockerfile, pins), marker);
    context = buildContext(labelled.text, files, contextTree, deps.limits.contextBytes);
    // The engine pulls FROM images and pushes by itself: the same address rule as for pulls, checked here.
    const logins: Record<string, RegistryLogin> = {};
    for (const { image: from } of [...pulled, ...triggered]) {
      const reference = parseReference(from);
      await deps.registry.assertEngineMayPull(reference.registry);
      const login = await deps.systems.credentialFor(reference, job.owner);
      if (login) logins[registryAuthKey(reference.registry)] = login;
    }
    const target = parseReference(job.target);
    await deps.registry.assertEngineMayPull(target.registry);
    save({ phase: 'building' });
    const built = await prepared.build({
      context,
      dockerfile: CONTEXT_DOCKERFILE,
      tag: job.target,
      network: system.build.network,
      limits: deps.builderLimits,
      layers: { marker, added: labelled.added },
      // Every FROM is pinned to the digest read above with the build's login; anything else is pulled again.
      pull: pulled.some((i) => i.kind !== 'from') || triggered.length > 0,
      registryLogins: logins,
      signal: held.signal,
      onStep: (step, steps) => save({ step, steps }),
      onOutput: (text) => {
        log(text);
        save();
      },
    });
    // The engine has the context: the checkout is not needed for the push.
    removeTemporaryFiles();
    if (!built.ok)
      return await end('failed', buildFailureMessage(built, held.stopReason === 'deadline', system.build.network, deps.builderLimits));
    save({ phase: 'pushing' });
    log(`Pushing ${job.target}\n`);
    const digest = await builder.push(
      job.target,
      await deps.systems.credentialFor(target, job.owner),
      registryAuthKey(target.registry),
      log,
      held.signal,
    );
    log(`Pushed ${job.target}@${digest}\n`);
    const status = await end('succeeded', null, digest);
    // Two rebuilds may run at once: the image follows the newest build, whichever ends last. It names
    // the pushed digest, not the tag: whatever is pushed to the tag later is not what was built.
    if ((await store.newestSucceeded(job.imageId)) === job.number) {
      await deps.imageStore.setReference(job.owner, job.imageId, `${job.target}@${digest}`, now());
      await untagPrevious(deps.store, job, builder);
    }
    await deps
      .check(job.owner, job.imageId)
      .catch((err: unknown) => logger.warn({ err, build: job.id }, 'could not queue the check of a built image'));
    return status;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    logger.warn({ build: job.id, reason: redact(message) }, 'build failed');
    return await end('failed', redact(message));
  } finally {
    removeTemporaryFiles();
  }
}

/** Why one of `images` is not `owner`'s to build from (another user's build, systems/pushPath.ts), naming its line. */
async function notOwnImage(deps: BuildRunDeps, owner: string, images: readonly PulledImage[]): Promise<string | undefined> {
  for (const { image, line } of images) {
    const problem = await deps.systems.builtImageProblem(parseReference(image), owner);
    if (problem) return `Line ${line}: ${problem}`;
  }
  return undefined;
}

/** The previous build's local tag goes once a newer one is pushed (its layers stay as the cache). */
async function untagPrevious(store: BuildStore, job: BuildRow, builder: ImageBuilder): Promise<void> {
  if (job.number <= 1) return;
  const previous = await store.byNumber(job.owner, job.imageId, job.number - 1);
  if (previous && previous.target !== job.target) await builder.untag(previous.target);
}

/** The Dockerfile in the context's directory of a fetched repository (a regular file, not a link out of it), size-limited. */
function repositoryDockerfile(tree: string | undefined, directory: string, maxBytes: number): string {
  const file = tree ? path.join(tree, 'Dockerfile') : '';
  const stat = file ? fs.lstatSync(file, { throwIfNoEntry: false }) : undefined;
  if (!stat?.isFile()) {
    throw upstream(
      'failed',
      `The repository has no Dockerfile ${directory ? `in ${directory}` : 'at its top'}: enter the Dockerfile in the form, or add one to the repository.`,
    );
  }
  if (stat.size > maxBytes)
    throw upstream('failed', `The repository's Dockerfile has ${formatKiB(stat.size)}; at most ${formatKiB(maxBytes)} are allowed.`);
  return fs.readFileSync(file, 'utf8');
}

/** Configuration files larger than this are not read (a requirements.txt of 256 KiB is already unusual). */
const CONFIGURATION_FILE_BYTES = 256 * 1024;

/**
 * The repository mode: how the fetched repository is built by repo2docker's
 * rules, on the base image the build names, read through the registry client
 * (its entrypoint, command and environment shape the written Dockerfile).
 */
function repositoryMode(system: System, job: BuildRow, tree: string | undefined, baseConfig: () => BaseConfig): RepositoryBuild {
  if (!tree) throw upstream('failed', 'A repository build needs a repository: none was fetched.');
  const config = baseConfig();
  const facts: BaseFacts = { image: job.inputs.base, entrypoint: config.Entrypoint ?? [], cmd: config.Cmd ?? [], env: config.Env ?? [] };
  return repositoryBuild(repositoryOnDisk(tree, CONFIGURATION_FILE_BYTES), {
    base: facts,
    uid: system.policy.uid,
    gid: system.policy.gid,
    home: homeOf(config),
    mirrors: system.build.mirrors,
  });
}

/** The base image's config (for the system's platform), read through the registry client with the build's login. */
async function readBaseConfig(
  imageConfigs: (reference: ImageReference) => ReturnType<ReturnType<RegistryClient['session']>['imageConfigs']>,
  system: System,
  job: BuildRow,
): Promise<BaseConfig> {
  const base = job.inputs.base;
  try {
    const { configs } = await imageConfigs(parseReference(base));
    const found = configs.find((c) => c.platform === system.platform) ?? configs[0];
    return found?.config.config ?? {};
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw upstream('failed', `Could not read the base image ${base}: ${reason}`, err);
  }
}

/** A promise that never rejects: its value or its error comes out when the getter is called (no unhandled rejection meanwhile). */
function settled<T>(promise: Promise<T>): Promise<() => T> {
  return promise.then(
    (value) => () => value,
    (err: unknown) => () => {
      throw err;
    },
  );
}

type BaseConfig = { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; User?: string };

/**
 * The notebook user's home in the base image, where repo2docker puts the
 * repository: the image's HOME when it sets one, else the home of the user it
 * names (/home/NAME, as useradd makes it), else jovyan's (Jupyter's images).
 */
export function homeOf(config: BaseConfig): string {
  const env = (config.Env ?? []).find((e) => e.startsWith('HOME='))?.slice(5);
  if (env && /^\/[A-Za-z0-9._/-]*$/.test(env) && env !== '/') return env.replace(/\/+$/, '');
  const user = (config.User ?? '').split(':')[0] ?? '';
  if (/^[a-z_][a-z0-9_-]*$/.test(user) && user !== 'root') return `/home/${user}`;
  return '/home/jovyan';
}
