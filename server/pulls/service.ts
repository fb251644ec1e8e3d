/**
 * Images kept in the Docker engine for launches. When a check passes on a
 * Docker system, the checked digest is pulled in the background (by one
 * replica for all that share the engine) so that Start does not wait for a
 * pull; a launch records that it used the image; the tiles show how far a
 * pull is. The pulls themselves run in {@link PullWorker}.
 */
import type { StartReadiness } from '../images/service.js';
import { pinnedImage, type ImageReference } from '../registry/reference.js';
import type { DockerEngine } from '../runner/engine.js';
import type { EngineImageRow, EngineImageStore, Requester } from './store.js';

/** A checked image of a user's configuration, to be kept in the engine. */
export interface PullTarget extends Requester {
  reference: ImageReference;
  /** The platform manifest's digest (what a spawner pulls by). */
  digest: string;
}

export interface PullServiceDeps {
  store: EngineImageStore;
  engine: DockerEngine;
  /** Wakes the worker after a pull was queued. */
  wake: () => void;
  now?: () => Date;
}

export class PullService {
  private readonly now: () => Date;

  constructor(private readonly deps: PullServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** Pulls a checked image into the engine in the background, unless it is there or on its way. */
  async request(target: PullTarget): Promise<void> {
    const { store, engine } = this.deps;
    const id = await engine.id();
    const image = pinnedImage(target.reference, target.digest);
    if (await engine.hasImage(image)) {
      // Pulled before (a run check, a launch, another deployment or the admin): recorded, never pulled again.
      const row = await store.get(id, image);
      if (!row || row.status !== 'ready') await store.present(id, image, target, false, this.now());
      return;
    }
    // A "ready" image that is gone from the engine (removed by hand) is pulled again.
    if (await store.request(id, image, target, this.now(), ['failed', 'removed', 'ready'])) this.deps.wake();
  }

  /** The run check left the image in the engine: no pull needed. */
  async present(target: PullTarget, pulledByService: boolean): Promise<void> {
    await this.deps.store.present(
      await this.deps.engine.id(),
      pinnedImage(target.reference, target.digest),
      target,
      pulledByService,
      this.now(),
    );
  }

  /**
   * A launch is about to start `image`: pulls it now if it is not in the
   * engine (the pre-pull failed, has not finished, or the image was removed),
   * and records the use that keeps it from being cleaned up.
   */
  async forLaunch(target: PullTarget, pull: () => Promise<void>): Promise<{ pulled: boolean }> {
    const { store, engine } = this.deps;
    const id = await engine.id();
    const image = pinnedImage(target.reference, target.digest);
    let pulled = false;
    if (!(await engine.hasImage(image))) {
      await pull();
      await store.present(id, image, target, true, this.now());
      pulled = true;
    }
    await store.used(id, image, this.now());
    return { pulled };
  }

  /** How far each image is from a fast start, by pinned image; absent where nothing is known. */
  async readiness(images: string[]): Promise<Map<string, StartReadiness>> {
    if (images.length === 0) return new Map();
    const rows = await this.deps.store.forImages(await this.deps.engine.id(), images);
    const out = new Map<string, StartReadiness>();
    for (const [image, row] of rows) {
      const state = readinessOf(row);
      if (state) out.set(image, state);
    }
    return out;
  }
}

function readinessOf(row: EngineImageRow): StartReadiness | undefined {
  switch (row.status) {
    case 'queued':
      return { state: 'preparing', percent: null };
    case 'pulling':
      return { state: 'preparing', percent: row.totalBytes > 0 ? Math.min(99, Math.floor(row.fraction * 100)) : null };
    case 'ready':
      return { state: 'ready' };
    case 'failed':
      return { state: 'failed', message: row.message ?? 'The image could not be pulled.' };
    default:
      return undefined;
  }
}
