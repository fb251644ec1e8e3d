/**
 * Opening a repository from a launch link: the plan (what will happen,
 * asked of nothing but the git server's refs and the hub), then, on the
 * visitor's one explicit request, the launch: build the commit into one of
 * the visitor's own images unless its newest build is that commit already,
 * wait for the check the build queues, stop the visitor's running server
 * when they said so, start their server through the hub with the image as
 * its `user_options` (the spawner hook turns them into a launch, as the
 * spawn form's would be), and wait until the hub calls it ready.
 *
 * The rules come first and cost nothing: the link's fields, the system,
 * the repository's host against the system's hosts; then one request for
 * the repository's refs, which also tells a private repository from a
 * public one. A link never starts anything by itself: `plan` only reads.
 *
 * A launch runs on the replica that took the request, and is kept in the
 * database, one per visitor: the progress page reads it through whichever
 * replica its request reaches. The running replica writes each step and a
 * beat while it waits; a launch whose beats stopped ended with its replica,
 * and says so.
 */
import { randomUUID } from 'node:crypto';
import { AppError, conflict, invalidInput } from '../errors.js';
import type { BuildService } from '../builds/service.js';
import type { GitFetcher } from '../builds/git.js';
import type { AccessRules } from '../hub/access.js';
import type { HubClient, ServerState } from '../hub/client.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageService } from '../images/service.js';
import type { Logger } from '../log.js';
import { gitHostProblem, type System } from '../systems/schema.js';
import { launchEnded, type LaunchStep, type LaunchView } from './launch.js';
import type { LinkLaunchStore } from './launchStore.js';
import { landingPath, type LaunchLink } from './link.js';
import type { LinkStore, RepositoryImage } from './store.js';

/** How often a launch that waits says it is still at it; and after how long without a word it is taken to have ended. */
const LAUNCH_BEAT_MS = 5_000;
const LAUNCH_LIVE_MS = 30_000;

export interface LinkServiceDeps {
  store: LinkStore;
  launches: LinkLaunchStore;
  access: AccessRules;
  systems: { listEnabled(): Promise<System[]> };
  git: Pick<GitFetcher, 'resolveCommit'>;
  builds: Pick<BuildService, 'create' | 'rebuild' | 'get'>;
  images: Pick<ImageService, 'load'>;
  hub: Pick<HubClient, 'serverState' | 'startServer' | 'stopServer'>;
  /** The hub's base URL (`/`), where `/user/NAME/` is. */
  hubBaseUrl: string;
  logger: Logger;
  /** How long a git request for refs may take. */
  gitTimeoutMs: number;
  /** How often a launch looks at its build, check and server again. */
  pollMs?: number;
  /** The longest a launch waits for its server once the hub took the request (the hub has its own limit too). */
  startTimeoutMs?: number;
  /** The longest a launch waits for its build and check. */
  buildTimeoutMs: number;
  now?: () => Date;
}

/** What a link will do, shown before the visitor asks for it. */
export interface LinkPlan {
  link: LaunchLink;
  system: { slug: string; displayName: string };
  /** The commit the link's ref names now. */
  commit: string;
  /** The visitor's image whose newest build is this commit (built or building); null: it will be built. */
  image: { id: number; name: string; buildNumber: number; building: boolean } | null;
  /**
   * Where a build goes (when `image` is null): the visitor's image built
   * from this repository before, by its name (never one shared or
   * published: others start those), or null for a new image.
   */
  rebuilds: { id: number; name: string } | null;
  /** Minutes the build will take, from the visitor's earlier builds of this repository; null when none finished. */
  estimateMinutes: number | null;
  /** The visitor's server now: a running one is stopped first, if they say so. */
  server: ServerState['state'];
  /** Where the visitor lands once their server is ready. */
  landing: string;
}

/** One visitor's launch, as the replica running it holds it: `id` names its row's writes. */
interface Launch extends LaunchView {
  owner: string;
  id: string;
}

/** What the visitor asked for besides the link: to stop their running server first. */
export interface LaunchRequest {
  stopRunning: boolean;
}

const NAME_MAX = 50;

export class LinkService {
  private readonly pollMs: number;
  private readonly startTimeoutMs: number;

  constructor(private readonly deps: LinkServiceDeps) {
    // A quarter second: a launch waits for the hub as often as the spawn page does, a few cheap requests.
    this.pollMs = deps.pollMs ?? 250;
    this.startTimeoutMs = deps.startTimeoutMs ?? 10 * 60_000;
  }

  /** What opening `link` will do for `actor`: reads only (the refs of the repository, the hub's view of their server). */
  async plan(actor: HubIdentity, link: LaunchLink): Promise<LinkPlan> {
    this.deps.access.buildImages(actor);
    this.deps.access.writeImagesOf(actor, actor.name);
    const system = await this.systemFor(link);
    const host = new URL(link.repo).host;
    const hostProblem = gitHostProblem(system, host);
    if (hostProblem) throw invalidInput({ repo: hostProblem });
    const commit = await this.resolve(link, system);
    // Images a link built (or a researcher, by the same rules): another mode is another image.
    const images = (await this.deps.store.imagesFrom(actor.name, link.repo)).filter((i) => i.mode === 'repository');
    const same = images.find((i) => i.system === system.slug && i.commit === commit && i.status !== 'failed');
    const server = await this.deps.hub.serverState(actor.name);
    const earlier = same ? undefined : rebuildable(images, system.slug);
    return {
      link,
      system: { slug: system.slug, displayName: system.displayName },
      commit,
      image: same
        ? { id: same.imageId, name: same.name, buildNumber: same.number, building: same.status === 'queued' || same.status === 'running' }
        : null,
      rebuilds: earlier ? { id: earlier.imageId, name: earlier.name } : null,
      estimateMinutes: estimate(images),
      server: server.state,
      landing: landingPath(this.deps.hubBaseUrl, actor.name, link.urlpath),
    };
  }

  /**
   * Opens `link` for `actor`: builds if need be, and starts their server.
   * Answers at once with the launch; it goes on in the background ({@link current}).
   */
  async open(actor: HubIdentity, link: LaunchLink, request: LaunchRequest): Promise<LaunchView> {
    const owner = actor.name;
    const under = await this.current(actor);
    if (under && !launchEnded(under.step)) return openingAlready(under, link);
    const plan = await this.plan(actor, link);
    if (plan.server !== 'none' && !request.stopRunning)
      throw conflict('Your server is running. Opening this link starts it again with the repository: stop it first (your files stay).', {
        field: 'stopRunning',
      });
    const { imageId, imageName, buildNumber } = plan.image
      ? { imageId: plan.image.id, imageName: plan.image.name, buildNumber: plan.image.building ? plan.image.buildNumber : null }
      : await this.build(actor, plan);
    const now = this.now();
    const launch: Launch = {
      owner,
      id: randomUUID(),
      step: buildNumber === null ? 'checking' : 'building',
      message: null,
      repo: link.repo,
      commit: plan.commit,
      system: plan.system.slug,
      imageId,
      imageName,
      buildNumber,
      landing: plan.landing,
      startedAt: now,
    };
    // Taken in one statement: a launch another replica took meanwhile (a second click) is the one that runs.
    const held = await this.deps.launches.take(owner, launch.id, view(launch), now, new Date(now.getTime() - LAUNCH_LIVE_MS));
    if (held) return openingAlready(view(held), link);
    void this.run(actor, launch, plan.server !== 'none');
    return view(launch);
  }

  /** `actor`'s newest launch, through whichever replica runs it; undefined when there is none. */
  async current(actor: HubIdentity): Promise<LaunchView | undefined> {
    const stored = await this.deps.launches.get(actor.name);
    if (!stored) return undefined;
    const launch = view(stored);
    if (!launchEnded(launch.step) && this.now().getTime() - stored.beatAt.getTime() > LAUNCH_LIVE_MS)
      return { ...launch, step: 'failed', message: 'The service stopped while it was opening this link: open the link again.' };
    return launch;
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** The system the link names, or the only one that builds; refused in words. */
  private async systemFor(link: LaunchLink): Promise<System> {
    const building = (await this.deps.systems.listEnabled()).filter((s) => s.build.enabled);
    if (link.system !== '') {
      const named = building.find((s) => s.slug === link.system);
      if (named) return named;
      throw invalidInput({
        system: `"${link.system}" is not a system that builds images here; the link may name ${building.map((s) => s.slug).join(', ') || 'none (ask the hub admin)'}`,
      });
    }
    const [only, ...others] = building;
    if (!only) throw invalidInput({ system: 'No system here builds images, so a repository cannot be opened: ask the hub admin.' });
    if (others.length > 0)
      throw invalidInput({ system: `Name the system in the link (system=…): one of ${building.map((s) => s.slug).join(', ')}` });
    return only;
  }

  /** The commit the link's ref names; what the git server said, in words, as a 4xx (the link is what is wrong). */
  private async resolve(link: LaunchLink, system: System): Promise<string> {
    let commit: string | undefined;
    try {
      commit = await this.deps.git.resolveCommit({
        url: link.repo,
        ref: link.ref,
        username: '',
        // A link carries no token: a private repository is refused (a researcher builds it from the build form).
        token: undefined,
        signal: AbortSignal.timeout(this.deps.gitTimeoutMs),
        hosts: system.build.gitHosts,
      });
    } catch (err) {
      if (err instanceof AppError && err.code === 'upstream_failed') {
        if (/needs an access token|refused the access token/.test(err.message))
          throw new AppError('forbidden', `${err.message} A launch link opens public repositories only.`, { field: 'repo', cause: err });
        throw new AppError('bad_request', err.message, { field: 'repo', cause: err });
      }
      // The link's field is ref, the build's gitRef.
      if (err instanceof AppError && err.field === 'gitRef')
        throw new AppError('bad_request', err.fields.gitRef ?? err.message, { field: 'ref' });
      throw err;
    }
    // An abbreviated commit id is resolved only by a fetch: the plan must show the commit it will build.
    if (commit === undefined)
      throw invalidInput({ ref: `"${link.ref}" looks like an abbreviated commit id: give the full 40-character id, a branch or a tag` });
    return commit;
  }

  /** Queues the build of the plan's commit: a new build of the visitor's image from this repository on the system, or a new image. */
  private async build(actor: HubIdentity, plan: LinkPlan): Promise<{ imageId: number; imageName: string; buildNumber: number }> {
    const owner = actor.name;
    // By repo2docker's rules (builds/repo2docker.ts): a Dockerfile in the repository wins, its configuration files otherwise.
    const inputs = { mode: 'repository', gitUrl: plan.link.repo, gitRef: plan.commit, system: plan.system.slug };
    // The image the plan named, if it is still one a link may build into.
    const earlier = plan.rebuilds
      ? rebuildable(await this.deps.store.imagesFrom(owner, plan.link.repo), plan.system.slug, plan.rebuilds.id)
      : undefined;
    if (earlier) {
      const image = await this.deps.images.load(owner, earlier.imageId);
      const build = await this.deps.builds.rebuild(
        actor,
        owner,
        earlier.imageId,
        { ...inputs, description: image.description, mountPath: image.mountPathIsDefault ? '' : image.mountPath },
        [],
      );
      return { imageId: earlier.imageId, imageName: earlier.name, buildNumber: build.number };
    }
    const name = await this.freeName(owner, plan.link.repo);
    const created = await this.deps.builds.create(actor, owner, { ...inputs, name, description: `Opened from ${plan.link.repo}` }, []);
    return { imageId: created.image.id, imageName: name, buildNumber: created.build.number };
  }

  /** The repository's name as an image name, with -2, -3 … when the visitor has that name already. */
  private async freeName(owner: string, repo: string): Promise<string> {
    const base = imageNameFor(repo);
    for (let n = 1; n <= 20; n++) {
      const name = n === 1 ? base : `${base.slice(0, NAME_MAX - 3)}-${n}`;
      if (!(await this.deps.store.nameTaken(owner, name))) return name;
    }
    throw conflict(`You have many images called ${base}: delete or rename some, then open the link again.`);
  }

  /** Build, check, stop, start, ready: each step written on `launch` for the progress page; a failure ends it in words. */
  private async run(actor: HubIdentity, launch: Launch, stopFirst: boolean): Promise<void> {
    const owner = launch.owner;
    const buildDeadline = Date.now() + this.deps.buildTimeoutMs;
    try {
      if (launch.buildNumber !== null) {
        const number = launch.buildNumber;
        await this.until(launch, buildDeadline, 'The build did not end in time.', async () => {
          const { build } = await this.deps.builds.get(actor, owner, launch.imageId, number);
          if (build.status === 'failed') throw new LaunchFailed(`The build failed: ${build.message ?? 'see its log'}`);
          return build.status === 'succeeded';
        });
      }
      await this.enter(launch, 'checking');
      await this.until(launch, buildDeadline, 'The check of the built image did not end in time.', async () => {
        const { status } = await this.deps.images.load(owner, launch.imageId);
        if (status.code === 'failed' || status.code === 'build_failed' || status.code === 'changed')
          throw new LaunchFailed(`The image cannot be started: ${status.label}. Its page says why.`);
        return status.code === 'passed';
      });
      if (stopFirst) {
        await this.enter(launch, 'stopping');
        await this.deps.hub.stopServer(owner);
        await this.until(launch, Date.now() + this.startTimeoutMs, 'Your running server did not stop in time.', async () => {
          return (await this.deps.hub.serverState(owner)).state === 'none';
        });
      }
      await this.enter(launch, 'starting');
      // What the spawn form gives the spawner hook (jupyterhub_config/custom_images_hook.py).
      await this.deps.hub.startServer(owner, { custom_images_system: launch.system, custom_images_image_id: launch.imageId });
      await this.until(
        launch,
        Date.now() + this.startTimeoutMs,
        'Your server did not start in time: the hub’s page may say why.',
        async () => {
          const state = await this.deps.hub.serverState(owner);
          if (state.state === 'none') throw new LaunchFailed('The hub could not start your server: its home page says why.');
          return state.state === 'ready';
        },
      );
      await this.enter(launch, 'ready');
    } catch (err) {
      // Taken for ended and replaced by a newer launch: this one does nothing more, and writes nothing.
      if (err instanceof LaunchReplaced) return;
      let message: string;
      if (err instanceof LaunchFailed || (err instanceof AppError && err.expose)) message = err.message;
      else {
        message = 'Opening the link failed; the hub admin can find why in the service log.';
        this.deps.logger.error({ err, user: owner, repo: launch.repo }, 'launch link failed');
      }
      await this.enter(launch, 'failed', message).catch((err: unknown) =>
        this.deps.logger.error({ err, user: owner }, 'could not store how a launch link ended'),
      );
    }
  }

  /**
   * `launch` goes on to `step` (`message`: why it failed), written for the
   * progress page wherever it is read; before the step acts (stops or starts
   * the server). Refused when a newer launch took the row meanwhile.
   */
  private async enter(launch: Launch, step: LaunchStep, message: string | null = null): Promise<void> {
    launch.step = step;
    launch.message = message;
    if (!(await this.deps.launches.update(launch.owner, launch.id, view(launch), this.now()))) throw new LaunchReplaced();
  }

  /**
   * Asks `done` every poll until it says yes; refused with `late` after
   * `deadline`. Meanwhile `launch` beats: other replicas see it is still run.
   */
  private async until(launch: Launch, deadline: number, late: string, done: () => Promise<boolean>): Promise<void> {
    let beat = Date.now();
    for (;;) {
      if (await done()) return;
      if (Date.now() > deadline) throw new LaunchFailed(late);
      if (Date.now() - beat >= LAUNCH_BEAT_MS) {
        beat = Date.now();
        if (!(await this.deps.launches.beat(launch.owner, launch.id, this.now()))) throw new LaunchReplaced();
      }
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
  }
}

/**
 * A link opened while `live` (another launch of the visitor's) runs: the same
 * link is that launch; another is refused until it has ended.
 */
function openingAlready(live: LaunchView, link: LaunchLink): LaunchView {
  if (live.repo === link.repo && live.system === (link.system || live.system)) return live;
  throw conflict(`A link is being opened for you already (${live.repo}): wait until your server has started, then open this one.`);
}

/** A launch that ended for a reason the visitor is told. */
class LaunchFailed extends Error {}

/** A launch whose row a newer launch took (it was taken for ended): it stops, silently. */
class LaunchReplaced extends Error {}

function view(launch: LaunchView): LaunchView {
  return {
    step: launch.step,
    message: launch.message,
    repo: launch.repo,
    commit: launch.commit,
    system: launch.system,
    imageId: launch.imageId,
    imageName: launch.imageName,
    buildNumber: launch.buildNumber,
    landing: launch.landing,
    startedAt: launch.startedAt,
  };
}

/**
 * The visitor's image from this repository on `system` that a link's build
 * may go into (`id`: that one only): built by repo2docker's rules, and
 * neither shared nor published, so that nobody else's next start runs the
 * commit a link names.
 */
function rebuildable(images: RepositoryImage[], system: string, id?: number): RepositoryImage | undefined {
  return images.find(
    (i) => i.system === system && i.mode === 'repository' && !i.sharedOrPublished && (id === undefined || i.imageId === id),
  );
}

/** Minutes a build of this repository took the visitor before (the newest that finished), rounded up; null if none. */
function estimate(images: RepositoryImage[]): number | null {
  const took = images.map((i) => i.durationMs).find((d): d is number => d !== null && d > 0);
  return took === undefined ? null : Math.max(1, Math.ceil(took / 60_000));
}

/** `https://github.com/lab/My_Paper.git` → `my_paper`: an image name (lower-case, digits, . _ - between). */
export function imageNameFor(repo: string): string {
  const encoded = new URL(repo).pathname.split('/').filter(Boolean).pop() ?? '';
  let last = encoded;
  try {
    last = decodeURIComponent(encoded);
  } catch {
    // not percent-encoding: taken as it is
  }
  const name = last
    .replace(/\.git$/i, '')
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/[._-]{2,}/g, '-')
    .replace(/^[._-]+|[._-]+$/g, '')
    .slice(0, NAME_MAX)
    .replace(/[._-]+$/g, '');
  return name || 'repository';
}
