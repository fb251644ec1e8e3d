/**
 * Runs the queued pulls of this replica's Docker engine, a few at once, with
 * the same claiming and heartbeat rules as check jobs (replicas on one engine
 * pull an image once), keeps the images this service pulled within a budget
 * of the engine's disk (the least recently started go first, never one a
 * container uses; a pull that cannot fit is not kept, and the launch pulls
 * it), and removes those that no launch used for `keepDays` and no container
 * uses.
 */
import { formatBytes } from '../format.js';
import type { Logger } from '../log.js';
import { JobWorker } from '../jobs/worker.js';
import { ThrottledWriter } from '../jobs/throttle.js';
import type { RegistryCredentials } from '../registry/client.js';
import { parseReference, registryAuthKey, type ImageReference } from '../registry/reference.js';
import type { DockerEngine, PullProgress } from '../runner/engine.js';
import type { EngineImageRow, EngineImageStore } from './store.js';

export interface PullWorkerOptions {
  store: EngineImageStore;
  engine: DockerEngine;
  /** The credentials of the configuration that asked for the image (its own, else the site's). */
  credentials: (owner: string, imageId: number, reference: ImageReference) => Promise<RegistryCredentials | undefined>;
  /** Refuses a registry the service itself would not contact (the engine connects by itself). */
  mayPull: (registry: string) => Promise<void>;
  logger: Logger;
  /** How long a pull may take. */
  timeoutMs: number;
  /** Images unused this long are removed; 0 keeps them. */
  keepDays: number;
  /**
   * What the images this service pulled into the engine may take together,
   * as the engine counts each image's size (unpacked; layers that images
   * share count for each).
   */
  budgetBytes: number;
  concurrency?: number;
  pollMs?: number;
  staleMs?: number;
  now?: () => Date;
}

const CLEANUP_EVERY_MS = 3600_000;
const PROGRESS_EVERY_MS = 500;
const DAY_MS = 86_400_000;

export class PullWorker {
  private readonly jobs: JobWorker<EngineImageRow>;
  private readonly now: () => Date;
  private lastCleanup = 0;
  /** Making room is one at a time on this replica: two pulls ending at once must not both count the same free space. */
  private room: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: PullWorkerOptions) {
    this.now = options.now ?? (() => new Date());
    const { store, engine } = options;
    this.jobs = new JobWorker<EngineImageRow>({
      what: 'pull',
      // Only this engine's pulls: another engine's images are no use here.
      queue: {
        queued: async (limit) => store.queued(await engine.id(), limit),
        get: (id) => store.byId(id),
        claim: (id, runner, now) => store.claim(id, runner, now),
        heartbeat: (ids, runner, now) => store.heartbeat(ids, runner, now),
        recoverStale: (before, maxAttempts, now) => store.recoverStale(before, maxAttempts, now),
      },
      run: (row) => this.pull(row),
      logger: options.logger,
      concurrency: options.concurrency ?? 2,
      ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
      ...(options.staleMs !== undefined ? { staleMs: options.staleMs } : {}),
      housekeeping: async () => {
        if (Date.now() - this.lastCleanup < CLEANUP_EVERY_MS) return;
        this.lastCleanup = Date.now();
        const cleaned = await this.cleanUp();
        if (cleaned.removed.length > 0) options.logger.info({ removed: cleaned.removed }, 'removed images no launch used lately');
      },
    });
  }

  start(): void {
    this.jobs.start();
  }

  nudge(): void {
    this.jobs.nudge();
  }

  /** Stops claiming; waits for the pulls in hand (the caller bounds the wait). */
  stop(): Promise<void> {
    return this.jobs.stop();
  }

  /**
   * Removes the images this service pulled into the engine that no launch used
   * for `keepDays`; the engine keeps those a container (running or stopped) uses.
   */
  async cleanUp(): Promise<{ removed: string[]; inUse: string[] }> {
    const { store, engine, keepDays } = this.options;
    const result = { removed: [] as string[], inUse: [] as string[] };
    if (keepDays <= 0) return result;
    const now = this.now();
    for (const row of await store.unusedSince(await engine.id(), new Date(now.getTime() - keepDays * DAY_MS))) {
      const outcome = await engine.removeImage(row.image);
      if (outcome === 'in_use') {
        result.inUse.push(row.image);
        continue;
      }
      await store.removed(row.id, now);
      if (outcome === 'removed') result.removed.push(row.image);
    }
    return result;
  }

  /**
   * Removes kept images, the least recently started first and never one a
   * container uses, until they take at most the budget with `needed` bytes
   * more; false (and nothing removed) when that cannot be.
   */
  private makeRoom(row: EngineImageRow, needed: number): Promise<boolean> {
    const turn = this.room.then(async () => {
      const { store, engine, budgetBytes, logger } = this.options;
      const kept = (await store.kept(row.engine)).filter((k) => k.id !== row.id);
      const [sizes, inUse] = await Promise.all([Promise.all(kept.map((k) => engine.imageSize(k.image))), engine.imagesInUse()]);
      const used = sizes.reduce((sum, size) => sum + (size?.bytes ?? 0), 0);
      if (used + needed <= budgetBytes) return true;
      const free = sizes.reduce((sum, size) => sum + (size && !inUse.has(size.id) ? size.bytes : 0), 0);
      if (used - free + needed > budgetBytes) return false;
      let left = used;
      const removed: string[] = [];
      for (const [index, candidate] of kept.entries()) {
        const size = sizes[index];
        if (left + needed <= budgetBytes) break;
        if (size && inUse.has(size.id)) continue;
        // A container may have started since: the engine refuses, and the image stays.
        const outcome = size ? await engine.removeImage(candidate.image) : 'missing';
        if (outcome === 'in_use') continue;
        await store.removed(candidate.id, this.now());
        left -= size?.bytes ?? 0;
        if (outcome === 'removed') removed.push(candidate.image);
      }
      if (removed.length > 0)
        logger.info({ removed, for: row.image, budget: budgetBytes }, 'removed the least recently started kept images to make room');
      return left + needed <= budgetBytes;
    });
    this.room = turn.catch(() => undefined);
    return turn;
  }

  /** A pre-pull that does not fit: not kept (the launch pulls the image), in words for the tile and the log. */
  private async skip(row: EngineImageRow, progress: ThrottledWriter<PullProgress>, size?: number): Promise<string> {
    const budget = formatBytes(this.options.budgetBytes);
    await progress.flush();
    await this.options.store.finish(
      row.id,
      {
        status: 'failed',
        message: `the Docker host's room for images kept ready (${budget}) is taken by images in use`,
        pulledByService: false,
      },
      this.now(),
    );
    this.options.logger.warn(
      { image: row.image, ...(size !== undefined ? { bytes: size } : {}), budget: this.options.budgetBytes },
      `pre-pull skipped: the images kept in this engine would take more than CUSTOM_IMAGES_PULLED_IMAGES_GB (${budget}) and none of the others can go (a container uses each); Start will pull the image`,
    );
    return 'skipped';
  }

  private async pull(row: EngineImageRow): Promise<string> {
    const { store, engine, logger } = this.options;
    const reference = parseReference(row.image);
    const credentials =
      row.owner !== null && row.imageId !== null ? await this.options.credentials(row.owner, row.imageId, reference) : undefined;
    const progress = new ThrottledWriter<PullProgress>(
      (p) => store.progress(row.id, { currentBytes: p.current, totalBytes: p.total, fraction: p.fraction }),
      PROGRESS_EVERY_MS,
    );
    const started = Date.now();
    try {
      const there = await engine.hasImage(row.image);
      if (!there) {
        // Kept images past the budget already (launches pull what they need): room first, if anything can go.
        if (!(await this.makeRoom(row, 0))) return await this.skip(row, progress);
        await this.options.mayPull(reference.registry);
        await engine.pull(
          row.image,
          credentials ? { ...credentials, serveraddress: registryAuthKey(reference.registry) } : undefined,
          (p) => progress.set(() => p),
          this.options.timeoutMs,
        );
        // Its size as the engine stores it is known now: what does not fit beside it goes, or it does.
        const size = (await engine.imageSize(row.image))?.bytes ?? 0;
        if (!(await this.makeRoom(row, size))) {
          await engine.removeImage(row.image);
          return await this.skip(row, progress, size);
        }
      }
      await progress.flush();
      await store.finish(row.id, { status: 'ready', message: null, pulledByService: !there }, this.now());
      logger.info({ image: row.image, ms: Date.now() - started, pulled: !there }, 'image ready to start');
      return 'ready';
    } catch (err) {
      await progress.flush();
      const message = err instanceof Error ? err.message : String(err);
      await store.finish(row.id, { status: 'failed', message, pulledByService: false }, this.now());
      logger.warn({ image: row.image, reason: message }, 'pre-pull failed; Start will pull the image');
      return 'failed';
    }
  }
}
