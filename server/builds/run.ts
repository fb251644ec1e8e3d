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
import { ThrottledWriter } from '../jobs/throttle.js';
import type { Logger } from '../log.js';
import type { RegistryClient } from '../registry/client.js';
import { parseReference, registryAuthKey, type ImageReference } from '../registry/reference.js';
import { BoundedOutput } from '../runner/runCheck.js';
import type { Keyring } from '../secrets/keyring.js';
import type { SystemCatalog } from '../systems/schema.js';
import type { BuildLimits as BuilderLimits, ImageBuilder, RegistryLogin } from './builder.js';
import { buildContext, CONTEXT_DOCKERFILE } from './context.js';
import { dockerfileImages, dockerfileProblems } from './dockerfile.js';
import { buildFailureMessage } from './failure.js';
import { formatKiB } from '../format.js';
import type { GitFetcher } from './git.js';
import type { BuildLimits } from './recipe.js';
import type { WorkDir } from '../workDir.js';
import type { BuildRow, BuildStatus, BuildStore } from './store.js';

export interface BuildRunDeps {
  store: BuildStore;
  imageStore: ImageStore;
  systems: SystemCatalog & { credentialFor(reference: ImageReference): Promise<RegistryLogin | undefined> };
  keyring: Keyring;
  registry: Pick<RegistryClient, 'assertEngineMayPull'>;
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
const PROGRESS_EVERY_MS = 500;

/** The associated data of a build's git token: bound to its image and owner (rebuilds carry it over). */
export function tokenAssociatedData(imageId: number, owner: string): string {
  return `custom-images/git-token/v1/${imageId}/${owner}`;
}

/** Runs a claimed build to its end and stores how it ended: queued again when the replica stops. */
export async function runBuild(deps: BuildRunDeps, job: BuildRow, runner: string, stop: AbortSignal): Promise<BuildStatus> {
  const { store, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const secrets: string[] = [];
  const output = new BoundedOutput(LOG_BYTES);
  const redact = (text: string) => secrets.reduce((t, s) => t.split(s).join('***'), text);
  const log = (text: string) => output.add(redact(text));
  // The whole state goes with every write: the writer keeps only the newest.
  const state: Parameters<BuildStore['progress']>[1] = { phase: 'context', step: 0, steps: 0 };
  const progress = new ThrottledWriter<Parameters<BuildStore['progress']>[1]>((p) => store.progress(job.id, p), PROGRESS_EVERY_MS);
  const save = (patch: Parameters<BuildStore['progress']>[1] = {}) => {
    Object.assign(state, patch);
    progress.set(() => ({ ...state, log: output.toString() }));
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
    if (stop.aborted && status === 'failed') {
      // Stopped for a restart, not by the build: another replica (or this one, started again) takes it.
      log('The service stopped during the build; it is queued again.\n');
      await progress.flush();
      await store.requeue(job.id, runner, output.toString());
      return 'queued';
    }
    if (message) log(`${message}\n`);
    await progress.flush();
    await store.finish(job.id, runner, { status, message, digest: digest ?? null, log: output.toString() }, now());
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
    save({ phase: 'context' });
    if (job.attempts > 1) log('The service restarted during the last attempt; building again from the start.\n');
    const files = await store.contents(job.id);
    if (job.gitUrl) {
      const token = job.gitToken ? deps.keyring.open(job.gitToken, tokenAssociatedData(job.imageId, job.owner)) : undefined;
      if (token) secrets.push(token);
      log(`Fetching ${job.gitUrl}${job.gitRef ? ` at ${job.gitRef}` : ''}\n`);
      const fetched = await deps.git.fetch({
        url: job.gitUrl,
        ref: job.gitRef ?? '',
        username: job.gitUsername ?? '',
        token,
        signal: stop,
      });
      tree = fetched.dir;
      log(`Checked out commit ${fetched.commit}\n`);
      save({ gitCommit: fetched.commit });
    }
    let dockerfile = job.dockerfile;
    if (dockerfile === '') {
      // The repository's own Dockerfile, under the same rules as one typed in the form.
      dockerfile = repositoryDockerfile(tree, deps.limits.dockerfileBytes);
      const problems = dockerfileProblems(dockerfile, {
        allowedRegistries: system.allowedRegistries,
        systemName: system.displayName,
        maxBytes: deps.limits.dockerfileBytes,
      });
      if (problems.length > 0) return await end('failed', `The repository's Dockerfile cannot be built here: ${problems.join('; ')}`);
      log("Building the repository's Dockerfile\n");
    }
    context = buildContext(dockerfile, files, tree, deps.limits.contextBytes);
    // The engine pulls FROM images and pushes by itself: the same address rule as for pulls, checked here.
    const logins: Record<string, RegistryLogin> = {};
    for (const { image: from } of dockerfileImages(dockerfile).images) {
      const reference = parseReference(from);
      await deps.registry.assertEngineMayPull(reference.registry);
      const login = await deps.systems.credentialFor(reference);
      if (login) logins[registryAuthKey(reference.registry)] = login;
    }
    const target = parseReference(job.target);
    await deps.registry.assertEngineMayPull(target.registry);
    save({ phase: 'building' });
    const built = await builder.build({
      context,
      dockerfile: CONTEXT_DOCKERFILE,
      tag: job.target,
      network: system.build.network,
      limits: deps.builderLimits,
      registryLogins: logins,
      signal: stop,
      onStep: (step, steps) => save({ step, steps }),
      onOutput: (text) => {
        log(text);
        save();
      },
    });
    // The engine has the context: the checkout is not needed for the push.
    removeTemporaryFiles();
    if (!built.ok) return await end('failed', buildFailureMessage(built, system.build.network, deps.builderLimits));
    save({ phase: 'pushing' });
    log(`Pushing ${job.target}\n`);
    const digest = await builder.push(job.target, await deps.systems.credentialFor(target), registryAuthKey(target.registry), log, stop);
    log(`Pushed ${job.target}@${digest}\n`);
    const status = await end('succeeded', null, digest);
    // Two rebuilds may run at once: the image follows the newest build, whichever ends last.
    if ((await store.newestSucceeded(job.imageId)) === job.number) {
      await deps.imageStore.setReference(job.owner, job.imageId, job.target, now());
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

/** The previous build's local tag goes once a newer one is pushed (its layers stay as the cache). */
async function untagPrevious(store: BuildStore, job: BuildRow, builder: ImageBuilder): Promise<void> {
  if (job.number <= 1) return;
  const previous = await store.byNumber(job.owner, job.imageId, job.number - 1);
  if (previous && previous.target !== job.target) await builder.untag(previous.target);
}

/** The Dockerfile at the top of a fetched repository (a regular file, not a link out of it), size-limited. */
function repositoryDockerfile(tree: string | undefined, maxBytes: number): string {
  const file = tree ? path.join(tree, 'Dockerfile') : '';
  const stat = file ? fs.lstatSync(file, { throwIfNoEntry: false }) : undefined;
  if (!stat?.isFile()) {
    throw upstream(
      'failed',
      'The repository has no Dockerfile at its top: enter the Dockerfile in the form, or add one to the repository.',
    );
  }
  if (stat.size > maxBytes)
    throw upstream('failed', `The repository's Dockerfile has ${formatKiB(stat.size)}; at most ${formatKiB(maxBytes)} are allowed.`);
  return fs.readFileSync(file, 'utf8');
}
