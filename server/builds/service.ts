/**
 * Building images for researchers: a request becomes an image configuration
 * (named, unique per owner) and a queued build job; any replica with an
 * engine runs it (builds/worker.ts): context, build, push as
 * `<pushTo>/<user>/<name>:<number>`, then the image points at the pushed
 * build and a check is queued, after which it is an image like any other.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { auditEntry } from '../audit/store.js';
import { AppError, conflict, invalidInput, notFound, tooManyRequests } from '../errors.js';
import type { AccessRules } from '../hub/access.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageService, ImageView } from '../images/service.js';
import type { ImageStore } from '../images/store.js';
import { ThrottledWriter } from '../jobs/throttle.js';
import { Followers } from '../jobs/follow.js';
import type { Logger } from '../log.js';
import type { RegistryClient } from '../registry/client.js';
import { parseReference, registryAuthKey } from '../registry/reference.js';
import type { Keyring } from '../secrets/keyring.js';
import type { System, SystemCatalog } from '../systems/schema.js';
import { BoundedOutput } from '../runner/runCheck.js';
import type { BuildLimits as BuilderLimits, ImageBuilder, RegistryLogin } from './builder.js';
import { buildContext, CONTEXT_DOCKERFILE, packFiles, unpackFiles } from './context.js';
import { dockerfileImages } from './dockerfile.js';
import type { GitFetcher } from './git.js';
import { buildInputSchema, type BuildLimits, type BuildRecipe, type UploadedFile } from './recipe.js';
import { BuildStore, type BuildRow, type BuildStatus, type BuildSummary } from './store.js';
import { inputError } from '../forms.js';

export interface BuildServiceDeps {
  store: BuildStore;
  images: ImageService;
  imageStore: ImageStore;
  systems: SystemCatalog & {
    credentialFor(reference: ReturnType<typeof parseReference>): Promise<RegistryLogin | undefined>;
  };
  access: AccessRules;
  keyring: Keyring;
  registry: Pick<RegistryClient, 'assertEngineMayPull'>;
  git: GitFetcher;
  /** Undefined without a Docker engine: builds wait for a replica that has one. */
  builder: ImageBuilder | undefined;
  /** Queues the check of a freshly built image. */
  check: (owner: string, imageId: number) => Promise<unknown>;
  limits: BuildLimits;
  builderLimits: BuilderLimits;
  maxQueuedPerUser: number;
  maxStreamsPerUser: number;
  /** Told when a build was queued (wakes the worker). */
  onQueued?: () => void;
  logger: Logger;
  now?: () => Date;
}

/** A build as pages and the API show it: never its files' content or the token. */
export interface BuildView extends BuildSummary {
  durationMs: number | null;
  label: string;
}

/** The inputs of a build, to show and to edit for a rebuild (the token only as "stored"). */
export interface BuildInputs {
  mode: BuildRow['mode'];
  base: string | null;
  pip: string;
  conda: string;
  apt: string;
  dockerfile: string;
  files: Array<{ name: string; size: number }>;
  gitUrl: string | null;
  gitRef: string | null;
  gitUsername: string | null;
  gitTokenStored: boolean;
  gitCommit: string | null;
}

const LOG_BYTES = 256 * 1024;
const PROGRESS_EVERY_MS = 500;

/** The associated data of a build's git token: bound to its image and owner (rebuilds carry it over). */
function tokenAssociatedData(imageId: number, owner: string): string {
  return `custom-images/git-token/v1/${imageId}/${owner}`;
}

/** A hub user name as a path component of a repository: lower case, and a short hash when that changed it. */
export function userPathComponent(name: string): string {
  const plain = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (plain === name && plain !== '') return plain;
  return `${plain || 'user'}-${createHash('sha256').update(name).digest('hex').slice(0, 6)}`;
}

export function isBuildActive(status: BuildStatus): boolean {
  return status === 'queued' || status === 'running';
}

/** What the tile says of a build. */
export function buildLabel(build: BuildSummary): string {
  const of = build.steps > 0 ? ` (step ${build.step} of ${build.steps})` : '';
  if (build.status === 'queued') return 'Build queued';
  if (build.status === 'running') {
    if (build.phase === 'pushing') return 'Pushing';
    if (build.phase === 'building') return `Building${of}`;
    return 'Preparing the build';
  }
  if (build.status === 'succeeded') return 'Built';
  return build.step > 0 ? `Build failed at step ${build.step}` : 'Build failed';
}

export class BuildService {
  private readonly now: () => Date;
  private readonly followers: Followers;

  constructor(private readonly deps: BuildServiceDeps) {
    this.now = deps.now ?? (() => new Date());
    this.followers = new Followers(deps.maxStreamsPerUser, 'build');
  }

  /** The systems a user may build on: enabled, with building on. */
  async systemsForBuilding(): Promise<System[]> {
    return (await this.deps.systems.listEnabled()).filter((s) => s.build.enabled);
  }

  /** Validates, saves the image and queues build 1; nothing is stored when anything is wrong. */
  async create(actor: HubIdentity, owner: string, raw: unknown, files: UploadedFile[]): Promise<{ image: ImageView; build: BuildView }> {
    this.deps.access.writeImagesOf(actor, owner);
    const recipe = await this.validate(raw, files, undefined);
    if (await this.deps.imageStore.nameTaken(owner, recipe.name)) {
      throw conflict(`You have an image called ${recipe.name} already: choose another name, or rebuild that one`, { field: 'name' });
    }
    await this.assertQueueRoom(owner);
    const now = this.now();
    const { imageId, buildId } = await this.deps.imageStore.transaction(async (store) => {
      const target = this.target(recipe.system, owner, recipe.name, 1);
      const imageId = await store.insert(
        {
          owner,
          name: recipe.name,
          system: recipe.system.slug,
          referenceInput: target,
          reference: target,
          registry: parseReference(target).registry,
          mountPath: recipe.mountPath,
        },
        now,
      );
      const buildId = await BuildStore.insert(store.db, this.newBuild(actor, owner, imageId, 1, target, recipe, undefined, now));
      await store.audit(auditEntry(actor, 'image.build', { type: 'image', id: String(imageId) }, this.auditDetails(recipe, 1)), now);
      return { imageId, buildId };
    });
    this.deps.onQueued?.();
    return { image: await this.deps.images.load(owner, imageId), build: await this.view(buildId) };
  }

  /**
   * Queues the next build of a built image: with the inputs of its newest
   * build (`raw` undefined), or edited ones (a blank token keeps the stored
   * one for the same repository; no uploads keep the previous files).
   */
  async rebuild(actor: HubIdentity, owner: string, imageId: number, raw: unknown, files: UploadedFile[]): Promise<BuildView> {
    this.deps.access.writeImagesOf(actor, owner);
    const image = await this.deps.imageStore.get(owner, imageId);
    if (!image) throw notFound('Image');
    const previous = (await this.deps.store.forImage(owner, imageId, 1))[0];
    if (!previous) throw conflict('This image was not built by the service; there is nothing to rebuild.');
    const last = (await this.deps.store.get(previous.id)) as BuildRow;
    const keptFiles = files.length === 0 && last.files ? unpackFiles(last.files) : files;
    const recipe = await this.validate(
      raw === undefined
        ? { ...this.inputsAsRaw(last), name: image.name, system: image.system, mountPath: image.mountPath ?? '' }
        : { ...(raw as object), name: image.name },
      keptFiles,
      last.gitUrl ? { url: last.gitUrl, hasToken: last.gitToken !== null } : undefined,
    );
    await this.assertQueueRoom(owner);
    const now = this.now();
    const buildId = await this.deps.imageStore.transaction(async (store) => {
      const number = await BuildStore.nextNumber(store.db, imageId);
      const target = this.target(recipe.system, owner, image.name, number);
      const keepToken = recipe.git?.token.action === 'keep' ? last.gitToken : undefined;
      const id = await BuildStore.insert(
        store.db,
        this.newBuild(actor, owner, imageId, number, target, recipe, keepToken ?? undefined, now),
      );
      if (recipe.mountPath !== image.mountPath || recipe.system.slug !== image.system) {
        await store.update(owner, imageId, { ...image, system: recipe.system.slug, mountPath: recipe.mountPath }, now);
      }
      await store.audit(auditEntry(actor, 'image.rebuild', { type: 'image', id: String(imageId) }, this.auditDetails(recipe, number)), now);
      return id;
    });
    this.deps.onQueued?.();
    return this.view(buildId);
  }

  /** The builds of one of `owner`'s images, newest first. */
  async list(actor: HubIdentity, owner: string, imageId: number): Promise<BuildView[]> {
    this.deps.access.readImagesOf(actor, owner);
    return (await this.deps.store.forImage(owner, imageId)).map(viewOf);
  }

  /** The newest build of each of `owner`'s images that has one (for tiles). */
  async latestFor(owner: string, imageIds: number[]): Promise<Map<number, BuildView>> {
    const latest = await this.deps.store.latestFor(owner, imageIds);
    return new Map([...latest].map(([id, b]) => [id, viewOf(b)]));
  }

  /** One build with its log and inputs. */
  async get(
    actor: HubIdentity,
    owner: string,
    imageId: number,
    number: number,
  ): Promise<{ build: BuildView; log: string; inputs: BuildInputs }> {
    this.deps.access.readImagesOf(actor, owner);
    const row = await this.deps.store.byNumber(owner, imageId, number);
    if (!row) throw notFound('Build');
    return { build: viewOf(row), log: row.log, inputs: inputsOf(row) };
  }

  /** Follows a build until it ends, giving each state (with its log) to `send`. */
  async follow(
    actor: HubIdentity,
    owner: string,
    imageId: number,
    number: number,
    send: (state: { build: BuildView; log: string }) => void,
    closed: () => boolean,
  ): Promise<void> {
    const read = async () => {
      const { build, log } = await this.get(actor, owner, imageId, number);
      return { build, log };
    };
    await this.followers.follow(owner, await read(), read, (s) => isBuildActive(s.build.status), send, closed);
  }

  /** Runs a claimed build to its end; returns how it ended. */
  async execute(job: BuildRow, runner: string, stop: AbortSignal): Promise<BuildStatus> {
    const { store, logger } = this.deps;
    const secrets: string[] = [];
    const output = new BoundedOutput(LOG_BYTES);
    const redact = (text: string) => secrets.reduce((t, s) => t.split(s).join('***'), text);
    const log = (text: string) => output.add(redact(text));
    // The whole state goes with every write: the writer keeps only the newest.
    const state: Parameters<BuildStore['progress']>[1] = { phase: 'context', step: 0, steps: 0 };
    const progress = new ThrottledWriter<Parameters<BuildStore['progress']>[1]>((p) => store.progress(job.id, p), PROGRESS_EVERY_MS);
    const save = (patch: Parameters<BuildStore['progress']>[1] = {}) => {
      Object.assign(state, patch);
      progress.set({ ...state, log: output.toString() });
    };
    const end = async (status: 'succeeded' | 'failed', message: string | null, digest?: string): Promise<BuildStatus> => {
      if (stop.aborted && status === 'failed') {
        // Stopped for a restart, not by the build: another replica (or this one, started again) takes it.
        log('The service stopped during the build; it is queued again.\n');
        await progress.flush();
        await store.requeue(job.id, runner, output.toString());
        return 'queued';
      }
      if (message) log(`${message}\n`);
      await progress.flush();
      await store.finish(job.id, runner, { status, message, digest: digest ?? null, log: output.toString() }, this.now());
      return status;
    };
    let tree: string | undefined;
    try {
      const builder = this.deps.builder;
      if (!builder) return await end('failed', 'This replica has no Docker engine to build with.');
      const image = await this.deps.imageStore.get(job.owner, job.imageId);
      if (!image) return await end('failed', 'The image was deleted.');
      const system = await this.deps.systems.get(image.system);
      if (!system?.build.enabled)
        return await end('failed', `Building is turned off on ${system?.displayName ?? image.system}; ask the hub admin.`);
      save({ phase: 'context' });
      if (job.attempts > 1) log('The service restarted during the last attempt; building again from the start.\n');
      const files = job.files ? unpackFiles(job.files) : [];
      if (job.gitUrl) {
        const token = job.gitToken ? this.deps.keyring.open(job.gitToken, tokenAssociatedData(job.imageId, job.owner)) : undefined;
        if (token) secrets.push(token);
        log(`Fetching ${job.gitUrl}${job.gitRef ? ` at ${job.gitRef}` : ''}\n`);
        const fetched = await this.deps.git.fetch({
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
      const context = await buildContext(job.dockerfile, files, tree);
      // The engine pulls FROM images and pushes by itself: the same address rule as for pulls, checked here.
      const logins: Record<string, RegistryLogin> = {};
      for (const { image: from } of dockerfileImages(job.dockerfile).images) {
        const reference = parseReference(from);
        await this.deps.registry.assertEngineMayPull(reference.registry);
        const login = await this.deps.systems.credentialFor(reference);
        if (login) logins[registryAuthKey(reference.registry)] = login;
      }
      const target = parseReference(job.target);
      await this.deps.registry.assertEngineMayPull(target.registry);
      save({ phase: 'building' });
      const built = await builder.build({
        context,
        dockerfile: CONTEXT_DOCKERFILE,
        tag: job.target,
        network: system.build.network,
        limits: this.deps.builderLimits,
        registryLogins: logins,
        signal: stop,
        onStep: (step, steps) => save({ step, steps }),
        onOutput: (text) => {
          log(text);
          save();
        },
      });
      if (!built.ok) return await end('failed', failureMessage(built, system, this.deps.builderLimits.timeoutMs));
      save({ phase: 'pushing' });
      log(`Pushing ${job.target}\n`);
      const digest = await builder.push(
        job.target,
        await this.deps.systems.credentialFor(target),
        registryAuthKey(target.registry),
        log,
        stop,
      );
      log(`Pushed ${job.target}@${digest}\n`);
      const status = await end('succeeded', null, digest);
      // Two rebuilds may run at once: the image follows the newest build, whichever ends last.
      if ((await store.newestSucceeded(job.imageId)) === job.number) {
        await this.deps.imageStore.setReference(job.owner, job.imageId, job.target, this.now());
        await this.untagPrevious(job, builder);
      }
      await this.deps
        .check(job.owner, job.imageId)
        .catch((err: unknown) => logger.warn({ err, build: job.id }, 'could not queue the check of a built image'));
      return status;
    } catch (err) {
      const message = err instanceof AppError || err instanceof Error ? err.message : String(err);
      logger.warn({ build: job.id, reason: redact(message) }, 'build failed');
      return await end('failed', redact(message));
    } finally {
      if (tree) fs.rmSync(tree, { recursive: true, force: true });
    }
  }

  /** The previous build's local tag goes once a newer one is pushed (its layers stay as the cache). */
  private async untagPrevious(job: BuildRow, builder: ImageBuilder): Promise<void> {
    if (job.number <= 1) return;
    const previous = await this.deps.store.byNumber(job.owner, job.imageId, job.number - 1);
    if (previous && previous.target !== job.target) await builder.untag(previous.target);
  }

  private async validate(
    raw: unknown,
    files: UploadedFile[],
    previousGit: { url: string; hasToken: boolean } | undefined,
  ): Promise<BuildRecipe> {
    const result = buildInputSchema({
      systems: await this.systemsForBuilding(),
      files,
      limits: this.deps.limits,
      gitHostTrusted: (host) => this.deps.git.isTrusted(host),
      previousGit,
    }).safeParse(raw);
    if (!result.success) throw inputError(result.error, 'name');
    const recipe = result.data;
    if (recipe.git?.token.action === 'set' && !this.deps.keyring.canSeal) {
      throw invalidInput({
        gitToken: 'This service has no encryption key (CUSTOM_IMAGES_CRYPT_KEY), so it cannot store tokens; ask the hub admin.',
      });
    }
    return recipe;
  }

  private async assertQueueRoom(owner: string): Promise<void> {
    const active = await this.deps.store.activeFor(owner);
    if (active >= this.deps.maxQueuedPerUser) {
      throw tooManyRequests(
        `${owner} has ${active} builds waiting or running already (at most ${this.deps.maxQueuedPerUser}). Start another one when one of them is done.`,
        60,
      );
    }
  }

  /** Where build `number` is pushed. */
  private target(system: System, owner: string, name: string, number: number): string {
    return `${system.build.pushTo}/${userPathComponent(owner)}/${name}:${number}`;
  }

  private newBuild(
    actor: HubIdentity,
    owner: string,
    imageId: number,
    number: number,
    target: string,
    recipe: BuildRecipe,
    keptToken: BuildRow['gitToken'] | undefined,
    now: Date,
  ): Parameters<typeof BuildStore.insert>[1] {
    const git = recipe.git;
    const token =
      git?.token.action === 'set' ? this.deps.keyring.seal(git.token.token, tokenAssociatedData(imageId, owner)) : (keptToken ?? null);
    return {
      imageId,
      owner,
      number,
      requestedBy: actor.name,
      mode: recipe.mode,
      base: recipe.base,
      pip: recipe.pip,
      conda: recipe.conda,
      apt: recipe.apt,
      dockerfile: recipe.dockerfile,
      files: recipe.files.length > 0 ? packFiles(recipe.files) : null,
      fileNames: recipe.files.map((f) => ({ name: f.name, size: f.content.length })),
      gitUrl: git?.url ?? null,
      gitRef: git ? git.ref || null : null,
      gitUsername: git ? git.username || null : null,
      gitToken: token,
      target,
      createdAt: now,
    };
  }

  /** A stored build's inputs as a request would send them (for "rebuild with the same inputs"). */
  private inputsAsRaw(row: BuildRow): Record<string, unknown> {
    const base = row.base ?? '';
    return {
      mode: row.mode,
      base,
      pip: row.pip,
      conda: row.conda,
      apt: row.apt,
      dockerfile: row.mode === 'dockerfile' ? row.dockerfile : '',
      gitUrl: row.gitUrl ?? '',
      gitRef: row.gitRef ?? '',
      gitUsername: row.gitUsername ?? '',
    };
  }

  private auditDetails(recipe: BuildRecipe, number: number): Record<string, unknown> {
    return {
      name: recipe.name,
      system: recipe.system.slug,
      number,
      mode: recipe.mode,
      ...(recipe.base ? { base: recipe.base } : {}),
      files: recipe.files.map((f) => f.name),
      ...(recipe.git ? { git: recipe.git.url, ref: recipe.git.ref, token: recipe.git.token.action } : {}),
    };
  }

  private async view(buildId: number): Promise<BuildView> {
    return viewOf((await this.deps.store.get(buildId)) as BuildRow);
  }
}

function viewOf(build: BuildSummary): BuildView {
  const summary: BuildSummary = {
    id: build.id,
    imageId: build.imageId,
    owner: build.owner,
    number: build.number,
    status: build.status,
    phase: build.phase,
    target: build.target,
    digest: build.digest,
    step: build.step,
    steps: build.steps,
    message: build.message,
    createdAt: build.createdAt,
    startedAt: build.startedAt,
    finishedAt: build.finishedAt,
  };
  const durationMs = build.startedAt ? (build.finishedAt ?? new Date()).getTime() - build.startedAt.getTime() : null;
  return { ...summary, durationMs, label: buildLabel(build) };
}

function inputsOf(row: BuildRow): BuildInputs {
  return {
    mode: row.mode,
    base: row.base,
    pip: row.pip,
    conda: row.conda,
    apt: row.apt,
    dockerfile: row.dockerfile,
    files: row.fileNames,
    gitUrl: row.gitUrl,
    gitRef: row.gitRef,
    gitUsername: row.gitUsername,
    gitTokenStored: row.gitToken !== null,
    gitCommit: row.gitCommit,
  };
}

/** Why a build failed, in words: the step, the builder's reason, and what to do about it. */
function failureMessage(
  result: Extract<Awaited<ReturnType<ImageBuilder['build']>>, { ok: false }>,
  system: System,
  timeoutMs: number,
): string {
  const at = result.step > 0 ? ` at step ${result.step} of ${result.steps} (${result.instruction})` : '';
  if (result.timedOut) {
    const limit = timeoutMs >= 120_000 ? `${Math.round(timeoutMs / 60_000)} minutes` : `${Math.round(timeoutMs / 1000)} s`;
    return `The build took longer than ${limit} and was stopped${at}. Build fewer packages at once, or ask the hub admin for a longer time limit.`;
  }
  const network =
    system.build.network === 'none' && /^RUN\b/i.test(result.instruction)
      ? ' This system builds without a network: RUN steps cannot download anything. Put what they need in the build context (uploaded files or a git repository).'
      : '';
  return `Build failed${at}: ${result.reason.replace(/\.$/, '')}.${network}`;
}
