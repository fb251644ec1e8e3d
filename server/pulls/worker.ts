/**
 * Runs the queued pulls of this replica's Docker engine, a few at once, with
 * the lifecycle of jobs/ (replicas on one engine pull an image once; the pull
 * timeout is the job's deadline), keeps the images this service pulled within
 * a budget of the engine's disk (the least recently started go first, never
 * one a container uses; a pull that cannot fit is not kept, and the launch
 * pulls it), and removes those that no launch used for `keepDays` and no
 * container uses.
 */
import type { Knex } from 'knex';
import { formatBytes } from '../format.js';
import type { RunningJob } from '../jobs/running.js';
import { JobWorker } from '../jobs/worker.js';
import type { Logger } from '../log.js';
import type { RegistryCredentials } from '../registry/client.js';
import { parseReference, registryAuthKey, type ImageReference } from '../registry/reference.js';
import { pullTooSlow, type DockerEngine, type PullProgress } from '../runner/engine.js';
import { pullJobKind } from './job.js';
import type { EngineImageRow, EngineImageStore } from './store.js';

export interface PullWorkerOptions {
  db: Knex;
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
      db: options.db,
      kind: pullJobKind(options.timeoutMs),
      load: (id) => store.byId(id),
      // Only this engine's pulls: another engine's images are no use here.
      takes: async () => ({ engine: await engine.id() }),
      run: (row, job) => this.pull(row, job),
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
  private async skip(row: EngineImageRow, job: RunningJob, size?: number): Promise<string> {
    const budget = formatBytes(this.options.budgetBytes);
    await job.finish({
      status: 'failed',
      message: `the Docker host's room for images kept ready (${budget}) is taken by images in use`,
      finished_at: this.now(),
    });
    this.options.logger.warn(
      { image: row.image, ...(size !== undefined ? { bytes: size } : {}), budget: this.options.budgetBytes },
      `pre-pull skipped: the images kept in this engine would take more than CUSTOM_IMAGES_PULLED_IMAGES_GB (${budget}) and none of the others can go (a container uses each); Start will pull the image`,
    );
    return 'skipped';
  }

  private async pull(row: EngineImageRow, job: RunningJob): Promise<string> {
    const { engine, logger } = this.options;
    const reference = parseReference(row.image);
    const credentials =
      row.owner !== null && row.imageId !== null ? await this.options.credentials(row.owner, row.imageId, reference) : undefined;
    const started = Date.now();
    try {
      const there = await engine.hasImage(row.image);
      if (!there) {
        // Kept images past the budget already (launches pull what they need): room first, if anything can go.
        if (!(await this.makeRoom(row, 0))) return await this.skip(row, job);
        await this.options.mayPull(reference.registry);
        await engine.pull(
          row.image,
          credentials ? { ...credentials, serveraddress: registryAuthKey(reference.registry) } : undefined,
          (p: PullProgress) => job.progress(() => ({ current_bytes: p.current, total_bytes: p.total, fraction: p.fraction })),
          undefined,
          job.signal,
        );
        // Its size as the engine stores it is known now: what does not fit beside it goes, or it does.
        const size = (await engine.imageSize(row.image))?.bytes ?? 0;
        if (!(await this.makeRoom(row, size))) {
          await engine.removeImage(row.image);
          return await this.skip(row, job, size);
        }
      }
      await job.finish({ status: 'ready', message: null, finished_at: this.now(), fraction: 1, pulled_by_service: !there });
      logger.info({ image: row.image, ms: Date.now() - started, pulled: !there }, 'image ready to start');
      return 'ready';
    } catch (err) {
      const message =
        job.stopReason === 'deadline' ? pullTooSlow(row.image, this.options.timeoutMs) : err instanceof Error ? err.message : String(err);
      await job.finish({ status: 'failed', message, finished_at: this.now() });
      logger.warn({ image: row.image, reason: message }, 'pre-pull failed; Start will pull the image');
      return 'failed';
    }
  }
}
