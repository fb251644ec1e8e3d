/**
 * Runs the queued pulls of this replica's Docker engine, a few at once, with
 * the same claiming and heartbeat rules as check jobs (replicas on one engine
 * pull an image once), and removes the images this service pulled that no
 * launch used for `keepDays` and no container uses.
 */
import type { Logger } from '../log.js';
import { TickLoop } from '../jobs/loop.js';
import { runnerId } from '../jobs/runner.js';
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
  concurrency?: number;
  pollMs?: number;
  staleMs?: number;
  now?: () => Date;
}

const CLEANUP_EVERY_MS = 3600_000;
const PROGRESS_EVERY_MS = 500;
const DAY_MS = 86_400_000;

export class PullWorker {
  readonly id = runnerId();
  private readonly running = new Map<number, Promise<void>>();
  private readonly loop: TickLoop;
  private readonly now: () => Date;
  private lastCleanup = 0;
  private stopped = false;

  constructor(private readonly options: PullWorkerOptions) {
    this.loop = new TickLoop(() => this.tick(), options.pollMs ?? 1000);
    this.now = options.now ?? (() => new Date());
  }

  start(): void {
    this.stopped = false;
    this.loop.start();
  }

  nudge(): void {
    this.loop.nudge();
  }

  /** Stops claiming; waits for the pulls in hand (the caller bounds the wait). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop.stop();
    await Promise.allSettled(this.running.values());
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

  private async tick(): Promise<void> {
    const { store, engine, logger } = this.options;
    try {
      const now = this.now();
      await store.heartbeat([...this.running.keys()], this.id, now);
      const stale = await store.recoverStale(new Date(now.getTime() - (this.options.staleMs ?? 15_000)), 2, now);
      if (stale.requeued || stale.failed) logger.warn({ ...stale }, 'pulls of a stopped replica recovered');
      if (Date.now() - this.lastCleanup > CLEANUP_EVERY_MS) {
        this.lastCleanup = Date.now();
        const cleaned = await this.cleanUp();
        if (cleaned.removed.length > 0) logger.info({ removed: cleaned.removed }, 'removed images no launch used lately');
      }
      const free = (this.options.concurrency ?? 2) - this.running.size;
      if (free <= 0 || this.stopped) return;
      const engineId = await engine.id();
      for (const id of await store.queued(engineId, free)) {
        if (this.stopped || !(await store.claim(id, this.id, this.now()))) continue;
        const row = await store.byId(id);
        if (!row) continue;
        const run = this.pull(row)
          .catch((err: unknown) => logger.error({ err, image: row.image }, 'pull failed'))
          .finally(() => {
            this.running.delete(id);
            this.nudge();
          });
        this.running.set(id, run);
      }
    } catch (err) {
      // The database or the engine may be restarting: try again at the next poll.
      logger.warn({ err }, 'pull worker could not reach the database or the Docker engine');
    }
  }

  private async pull(row: EngineImageRow): Promise<void> {
    const { store, engine, logger } = this.options;
    const reference = parseReference(row.image);
    const credentials = row.owner !== null && row.imageId !== null ? await this.options.credentials(row.owner, row.imageId, reference) : undefined;
    const progress = new ThrottledWriter<PullProgress>((p) => store.progress(row.id, { currentBytes: p.current, totalBytes: p.total, fraction: p.fraction }), PROGRESS_EVERY_MS);
    const started = Date.now();
    try {
      const there = await engine.hasImage(row.image);
      if (!there) {
        await this.options.mayPull(reference.registry);
        await engine.pull(row.image, credentials ? { ...credentials, serveraddress: registryAuthKey(reference.registry) } : undefined, (p) => progress.set(p), this.options.timeoutMs);
      }
      await progress.flush();
      await store.finish(row.id, { status: 'ready', message: null, pulledByService: !there }, this.now());
      logger.info({ image: row.image, ms: Date.now() - started, pulled: !there }, 'image ready to start');
    } catch (err) {
      await progress.flush();
      const message = err instanceof Error ? err.message : String(err);
      await store.finish(row.id, { status: 'failed', message, pulledByService: false }, this.now());
      logger.warn({ image: row.image, reason: message }, 'pre-pull failed; Start will pull the image');
    }
  }
}
