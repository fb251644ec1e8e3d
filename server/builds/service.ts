/**
 * Building images for researchers: a request becomes an image configuration
 * (named, unique per owner) and a queued build job; any replica with an
 * engine runs it (builds/worker.ts): context, build, push as
 * `<pushTo>/<user>/<name>:<number>`, then the image points at the pushed
 * build and a check is queued, after which it is an image like any other.
 */
import { auditEntry, changedFields, imageTarget } from '../audit/store.js';
import { conflict, invalidInput, notFound, tooManyRequests, upstream } from '../errors.js';
import type { AccessRules } from '../hub/access.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageService, ImageView } from '../images/service.js';
import type { ImageStore } from '../images/store.js';
import { buildLabel, isBuildActive } from '../images/status.js';
import { Followers } from '../jobs/follow.js';
import type { JobKind } from '../jobs/kind.js';
import type { ReplicaStore } from '../jobs/replicas.js';
import type { RunningJob } from '../jobs/running.js';
import { buildJobKind } from './job.js';
import { parseReference } from '../registry/reference.js';
import type { System } from '../systems/schema.js';
import { inputsAsRequest, type BuildInputs } from './inputs.js';
import { buildInputSchema, type BuildRecipe, type UploadedFile } from './recipe.js';
import { BuildStore, contentHash, type BuildRow, type BuildStatus, type BuildSummary, type NewBuildFile } from './store.js';
import { inputError } from '../forms.js';
import { runBuild, tokenAssociatedData, type BuildRunDeps } from './run.js';
import { dockerfileImages } from './dockerfile.js';
import { userPathComponent } from '../systems/pushPath.js';
import { startScriptOf } from './repo2docker.js';

/** Directory lookups at submission (fetches of a repository) a replica runs at once, for all owners. */
const MAX_DIRECTORY_LOOKUPS = 4;

/** What a build run needs (builds/run.ts), and what requests need besides. */
export interface BuildServiceDeps extends BuildRunDeps {
  images: ImageService;
  access: AccessRules;
  maxQueuedPerUser: number;
  maxStreamsPerUser: number;
  /** Told when a build was queued (wakes the worker). */
  onQueued?: () => void;
  /** Whether some replica that can build is alive; asked only by a replica without a builder of its own. */
  replicas?: Pick<ReplicaStore, 'builderAlive'>;
  /** Refuses (in words) a build that would take `owner` or the system past a quota (storage/quota.ts). */
  quota?: (owner: string, system: System, adding: { images?: number; builds?: number }) => Promise<void>;
}

/** A build as pages and the API show it: never its files' content or the token. */
export interface BuildView extends BuildSummary {
  durationMs: number | null;
  label: string;
}

/** The inputs of a build, to show and to edit for a rebuild: the files by name and size, the token only as "stored". */
export interface BuildInputsView extends BuildInputs {
  files: Array<{ name: string; size: number }>;
  gitTokenStored: boolean;
  /** The commit the repository was checked out at, once fetched. */
  gitCommit: string | null;
  /** A repository build's start script (runs at every server start), or null. */
  start: string | null;
}

/** A build with its log and inputs. */
export interface BuildDetails {
  build: BuildView;
  log: string;
  inputs: BuildInputsView;
}

export class BuildService {
  /** Build jobs as jobs/ runs them, with this service's time limit. */
  readonly jobKind: JobKind;
  private readonly now: () => Date;
  private readonly followers: Followers;
  /** Owners whose request is looking up a repository's directory now: one each (a fetch costs disk and memory). */
  private readonly lookingUp = new Set<string>();

  constructor(private readonly deps: BuildServiceDeps) {
    this.now = deps.now ?? (() => new Date());
    this.followers = new Followers(deps.maxStreamsPerUser, 'build');
    this.jobKind = buildJobKind(deps.builderLimits.timeoutMs);
  }

  /**
   * The systems `actor` may build on, with their build settings (networks,
   * base images): enabled, with building on; only for those who may build.
   */
  async systemsFor(actor: HubIdentity): Promise<System[]> {
    this.deps.access.buildImages(actor);
    return this.systemsForBuilding();
  }

  /** The systems that build: enabled, with building on. */
  private async systemsForBuilding(): Promise<System[]> {
    return (await this.deps.systems.listEnabled()).filter((s) => s.build.enabled);
  }

  /** Validates, saves the image and queues build 1; nothing is stored when anything is wrong. */
  async create(
    actor: HubIdentity,
    owner: string,
    raw: unknown,
    uploads: UploadedFile[],
  ): Promise<{ image: ImageView; build: BuildView; reused?: true }> {
    this.deps.access.writeImagesOf(actor, owner);
    const files = toStore(uploads);
    const recipe = await this.validate(raw, files, undefined, owner);
    if (await this.deps.imageStore.nameTaken(owner, recipe.name)) {
      throw conflict(`You have an image called ${recipe.name} already: choose another name, or rebuild that one`, { field: 'name' });
    }
    await this.deps.store.assertQueueRoom(owner, this.deps.maxQueuedPerUser);
    await this.deps.quota?.(owner, recipe.system, { images: 1, builds: 1 });
    await this.assertSomeoneBuilds();
    await this.assertTargetIsOwn(recipe.system, owner, recipe.name);
    await this.assertDirectory(owner, recipe, undefined);
    const commit = await this.resolveCommit(recipe, undefined);
    const same = commit ? await this.sameCommitBuild(owner, recipe, commit) : undefined;
    if (same) return { image: await this.deps.images.load(owner, same.imageId), build: viewOf(same), reused: true };
    const now = this.now();
    const { imageId, buildId } = await this.deps.imageStore.transaction(async (store) => {
      const target = this.target(recipe.system, owner, recipe.name, 1);
      const imageId = await store.insert(
        {
          owner,
          name: recipe.name,
          description: recipe.description,
          system: recipe.system.slug,
          referenceInput: target,
          reference: target,
          registry: parseReference(target).registry,
          mountPath: recipe.mountPath,
        },
        now,
      );
      const buildId = await BuildStore.insert(store.db, {
        ...this.newBuild(actor, owner, imageId, 1, target, recipe, files, null, now),
        gitCommit: commit,
      });
      // Created by its first build: the image's history starts with both.
      await store.audit(
        auditEntry(actor, 'image.create', imageTarget(imageId), {
          name: recipe.name,
          system: recipe.system.slug,
          reference: target,
          mountPath: recipe.mountPath,
          built: true,
        }),
        now,
      );
      await store.audit(auditEntry(actor, 'image.build', imageTarget(imageId), this.auditDetails(recipe, 1)), now);
      return { imageId, buildId };
    });
    this.deps.onQueued?.();
    return { image: await this.deps.images.load(owner, imageId), build: await this.view(buildId) };
  }

  /**
   * Queues the next build of a built image: with the inputs of its newest
   * build (`raw` undefined), or edited ones (a blank token keeps the stored
   * one for the same repository; no uploads keep the previous files, named
   * again, not copied).
   */
  async rebuild(actor: HubIdentity, owner: string, imageId: number, raw: unknown, uploads: UploadedFile[]): Promise<BuildView> {
    this.deps.access.writeImagesOf(actor, owner);
    const image = await this.deps.imageStore.get(owner, imageId);
    if (!image) throw notFound('Image');
    const last = await this.deps.store.newest(owner, imageId);
    if (!last) throw conflict('This image was not built by the service; there is nothing to rebuild.');
    const keptFiles: NewBuildFile[] = uploads.length === 0 ? await this.deps.store.files(last.id) : toStore(uploads);
    const recipe = await this.validate(
      raw === undefined
        ? {
            ...inputsAsRequest(last.inputs),
            name: image.name,
            description: image.description,
            system: image.system,
            mountPath: image.mountPath ?? '',
          }
        : { ...(raw as object), name: image.name },
      keptFiles,
      last.inputs.gitUrl ? { url: last.inputs.gitUrl, hasToken: last.gitToken !== null } : undefined,
      owner,
    );
    await this.deps.store.assertQueueRoom(owner, this.deps.maxQueuedPerUser);
    await this.deps.quota?.(owner, recipe.system, { images: recipe.system.slug === image.system ? 0 : 1, builds: 1 });
    await this.assertSomeoneBuilds();
    await this.assertTargetIsOwn(recipe.system, owner, image.name);
    const sealed = last.gitToken;
    // The stored token, opened only when the request keeps it (the directory's lookup and the commit's both ask).
    const keptToken = sealed ? () => this.deps.keyring.open(sealed, tokenAssociatedData(imageId, owner)) : undefined;
    await this.assertDirectory(owner, recipe, keptToken);
    const commit = await this.resolveCommit(recipe, keptToken);
    const same = commit ? await this.sameCommitBuild(owner, recipe, commit) : undefined;
    const now = this.now();
    const fields = { description: recipe.description, system: recipe.system.slug, mountPath: recipe.mountPath };
    const changed = changedFields({ description: image.description, system: image.system, mountPath: image.mountPath }, fields);
    /** The image's own fields edited with the rebuild: kept, also when the commit is built already. */
    const saveEdits = async (store: ImageStore) => {
      if (changed.length === 0) return;
      await store.update(owner, imageId, { ...image, ...fields }, now);
      await store.audit(auditEntry(actor, 'image.update', imageTarget(imageId), { ...fields, changed }), now);
    };
    if (same?.imageId === imageId) {
      await this.deps.imageStore.transaction(saveEdits);
      return viewOf(same);
    }
    const buildId = await this.deps.imageStore.transaction(async (store) => {
      const number = await BuildStore.nextNumber(store.db, imageId);
      const target = this.target(recipe.system, owner, image.name, number);
      const keptToken = recipe.git?.token.action === 'keep' ? last.gitToken : null;
      const id = await BuildStore.insert(store.db, {
        ...this.newBuild(actor, owner, imageId, number, target, recipe, keptFiles, keptToken, now),
        gitCommit: commit,
      });
      await saveEdits(store);
      await store.audit(auditEntry(actor, 'image.rebuild', imageTarget(imageId), this.auditDetails(recipe, number)), now);
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
  async get(actor: HubIdentity, owner: string, imageId: number, number: number): Promise<BuildDetails> {
    this.deps.access.readImagesOf(actor, owner);
    const row = await this.deps.store.byNumber(owner, imageId, number);
    if (!row) throw notFound('Build');
    return detailsOf(row);
  }

  /** The newest build of an image with its log and inputs (what a rebuild starts from); undefined if it has none. */
  async newest(actor: HubIdentity, owner: string, imageId: number): Promise<BuildDetails | undefined> {
    this.deps.access.readImagesOf(actor, owner);
    const row = await this.deps.store.newest(owner, imageId);
    return row ? detailsOf(row) : undefined;
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
    this.deps.access.readImagesOf(actor, owner);
    // Not get(): that reads the inputs too, uploaded files included, and this runs twice a second.
    const read = async () => {
      const found = await this.deps.store.stateOf(owner, imageId, number);
      if (!found) throw notFound('Build');
      return { build: viewOf(found.build), log: found.log };
    };
    await this.followers.follow(owner, await read(), read, (s) => isBuildActive(s.build.status), send, closed);
  }

  /** Runs a claimed build to its end (builds/run.ts); returns how it ended. */
  execute(row: BuildRow, job: RunningJob): Promise<BuildStatus> {
    return runBuild(this.deps, row, job);
  }

  private async validate(
    raw: unknown,
    files: NewBuildFile[],
    previousGit: { url: string; hasToken: boolean } | undefined,
    owner: string,
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
    await this.assertOwnImages(recipe, owner);
    return recipe;
  }

  /**
   * A directory with the Dockerfile must be in the repository, a real
   * directory with no link on its path: looked up now, in the repository's
   * tree at the ref (a bounded fetch, no checkout), so that a wrong one is a
   * 400 naming the field and nothing is queued; the job looks again, as the
   * branch may move in between. Runs after the cheap checks and the queue's
   * room: a refused request costs no fetch.
   */
  private async assertDirectory(owner: string, recipe: BuildRecipe, keptToken: (() => string) | undefined): Promise<void> {
    const git = recipe.git;
    if (!git || git.directory === '') return;
    // Each lookup is a fetch of up to CUSTOM_IMAGES_BUILD_GIT_MAX_MB, to disk and through memory: one per owner
    // at a time, and a few per replica, however many requests arrive at once.
    if (this.lookingUp.has(owner))
      throw tooManyRequests('A directory of a repository is being looked up for you already: try again once that request has answered.', 5);
    if (this.lookingUp.size >= MAX_DIRECTORY_LOOKUPS)
      throw tooManyRequests('Repositories of other builds are being looked up right now: try again in a few seconds.', 5);
    this.lookingUp.add(owner);
    try {
      const token = git.token.action === 'set' ? git.token.token : git.token.action === 'keep' ? keptToken?.() : undefined;
      await this.deps.git.assertDirectory({
        url: git.url,
        ref: git.ref,
        username: git.username,
        token,
        directory: git.directory,
        signal: AbortSignal.timeout(this.deps.builderLimits.timeoutMs),
        hosts: recipe.system.build.gitHosts,
      });
    } finally {
      this.lookingUp.delete(owner);
    }
  }

  /**
   * The commit a repository build's branch or tag names now: one small refs
   * request to the git server (the same guard as a fetch), which also refuses
   * a ref the repository does not have before anything is stored. Undefined
   * for other builds. The build is queued with it, so that a second request
   * for the same commit finds it while it waits.
   */
  private async resolveCommit(recipe: BuildRecipe, keptToken: (() => string) | undefined): Promise<string | undefined> {
    const git = recipe.git;
    if (!git || recipe.inputs.mode !== 'repository') return undefined;
    const token = git.token.action === 'set' ? git.token.token : git.token.action === 'keep' ? keptToken?.() : undefined;
    return this.deps.git.resolveCommit({
      url: git.url,
      ref: git.ref,
      username: git.username,
      token,
      signal: AbortSignal.timeout(this.deps.builderLimits.timeoutMs),
      hosts: recipe.system.build.gitHosts,
    });
  }

  /**
   * One build per commit: `owner`'s build of `commit` from the same
   * repository, directory, base and system, which its image still follows
   * (it pointed at that push last), or which is queued or running as its
   * image's newest build; undefined when there is none.
   */
  private async sameCommitBuild(owner: string, recipe: BuildRecipe, commit: string): Promise<BuildRow | undefined> {
    for (const build of await this.deps.store.ofCommit(owner, commit)) {
      const inputs = build.inputs;
      const same =
        inputs.mode === 'repository' &&
        inputs.gitUrl === recipe.inputs.gitUrl &&
        inputs.gitDirectory === recipe.inputs.gitDirectory &&
        inputs.base === recipe.inputs.base;
      const image = same ? await this.deps.imageStore.get(owner, build.imageId) : undefined;
      if (image?.system !== recipe.system.slug) continue;
      if (build.status === 'succeeded') {
        // The image must still point at this build's push (a newer build of it may have replaced it).
        if (build.digest && image.reference === `${build.target}@${build.digest}`) return build;
        continue;
      }
      // A build still to fetch builds what its own ref names then: the same commit only for the same ref (a branch's
      // newest commit is what both ask for; a commit id or tag must not get the branch). A new token fetches anew.
      const fetchesTheSame = inputs.gitRef === recipe.inputs.gitRef && recipe.git?.token.action !== 'set';
      if (fetchesTheSame && (await this.deps.store.newest(owner, build.imageId))?.id === build.id) return build;
    }
    return undefined;
  }

  /**
   * Only replicas with a Docker engine claim builds: where none is running, a
   * queued build would wait for ever in one of its owner's queue slots. 503,
   * nothing queued.
   */
  private async assertSomeoneBuilds(): Promise<void> {
    if (this.deps.builder) return;
    if (await this.deps.replicas?.builderAlive(this.now())) return;
    throw upstream(
      'unavailable',
      'This site has no build engine running (no replica of custom-images with a Docker engine), so nothing was queued. Try again later, or ask the hub admin.',
    );
  }

  /**
   * A build reads what it pulls with the site's credential: never another
   * user's build (a copy of it would outlive their share). A repository's
   * own Dockerfile is held to the same rule when it is built (builds/run.ts).
   */
  private async assertOwnImages(recipe: BuildRecipe, owner: string): Promise<void> {
    for (const { image, line } of dockerfileImages(recipe.inputs.dockerfile).images) {
      const problem = await this.deps.images.builtImageProblem(parseReference(image), owner);
      if (!problem) continue;
      if (recipe.inputs.mode === 'packages') throw invalidInput({ base: problem });
      throw invalidInput({ dockerfile: `Line ${line}: ${problem}` });
    }
  }

  /**
   * Refuses a push over another user's images: before user components were
   * one-to-one, two hub names could share one, and the other user's images
   * keep the repository their builds pushed to.
   */
  private async assertTargetIsOwn(system: System, owner: string, name: string): Promise<void> {
    const target = parseReference(this.target(system, owner, name, 1));
    const repository = `${target.registry}/${target.repository}`;
    if ((await this.deps.store.pushersOf(repository)).some((user) => user !== owner)) {
      throw conflict(`${repository} holds images another user built earlier: choose another name for this image`, { field: 'name' });
    }
  }

  /** Where build `number` is pushed: under the owner's own path component, one-to-one with their hub name. */
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
    files: NewBuildFile[],
    keptToken: BuildRow['gitToken'],
    now: Date,
  ): Parameters<typeof BuildStore.insert>[1] {
    const git = recipe.git;
    const token = git?.token.action === 'set' ? this.deps.keyring.seal(git.token.token, tokenAssociatedData(imageId, owner)) : keptToken;
    return {
      imageId,
      owner,
      number,
      requestedBy: actor.name,
      inputs: recipe.inputs,
      files,
      gitToken: token,
      target,
      createdAt: now,
    };
  }

  private auditDetails(recipe: BuildRecipe, number: number): Record<string, unknown> {
    return {
      name: recipe.name,
      system: recipe.system.slug,
      number,
      mode: recipe.inputs.mode,
      ...(recipe.inputs.base ? { base: recipe.inputs.base } : {}),
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
    gitCommit: build.gitCommit,
    createdAt: build.createdAt,
    startedAt: build.startedAt,
    finishedAt: build.finishedAt,
  };
  const durationMs = build.startedAt ? (build.finishedAt ?? new Date()).getTime() - build.startedAt.getTime() : null;
  return { ...summary, durationMs, label: buildLabel(build) };
}

function detailsOf(row: BuildRow): BuildDetails {
  return { build: viewOf(row), log: row.log, inputs: inputsOf(row) };
}

function inputsOf(row: BuildRow): BuildInputsView {
  return {
    ...row.inputs,
    files: row.fileNames,
    gitTokenStored: row.gitToken !== null,
    gitCommit: row.gitCommit,
    start: row.inputs.mode === 'repository' ? startScriptOf(row.inputs.dockerfile) : null,
  };
}

/** Uploads as a new build stores them: named by the sha256 of their content. */
function toStore(uploads: UploadedFile[]): NewBuildFile[] {
  return uploads.map((f) => ({ name: f.name, size: f.content.length, sha256: contentHash(f.content), content: f.content }));
}
