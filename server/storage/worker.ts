/**
 * Runs the clean-up as jobs: every replica asks for each period's run (one
 * row per slot, whoever asks first), any replica claims a registry run, and
 * a replica with an engine claims that engine's volumes runs. Runs of one
 * lane take turns; a stopped run is resumed by the next.
 */
import type { Knex } from 'knex';
import type { RunningJob } from '../jobs/running.js';
import { holdJob } from '../jobs/running.js';
import { JobWorker } from '../jobs/worker.js';
import type { Logger } from '../log.js';
import type { DockerEngine } from '../runner/engine.js';
import type { Cleanup } from './cleanup.js';
import { CLEANUP_JOB } from './job.js';
import type { CleanupRunRow, CleanupRunStore } from './runs.js';

export interface CleanupWorkerOptions {
  db: Knex;
  runs: CleanupRunStore;
  cleanup: Cleanup;
  /** This replica's engine: its volumes are cleaned here. */
  engine?: DockerEngine | undefined;
  /** How often a run is due; 0: only when an admin asks. */
  everyMs: number;
  logger: Logger;
  pollMs?: number;
  staleMs?: number;
  now?: () => Date;
}

export class CleanupWorker {
  private readonly registryJobs: JobWorker<CleanupRunRow>;
  private readonly volumeJobs: JobWorker<CleanupRunRow> | undefined;
  private readonly now: () => Date;
  /**
   * The period this replica last asked for, so that it asks once per
   * period; it starts as the current one: a replica that starts (a restart,
   * a test) does not run a clean-up at once, the period that begins next does.
   */
  private asked: string | undefined;

  constructor(private readonly options: CleanupWorkerOptions) {
    this.now = options.now ?? (() => new Date());
    const common = {
      db: options.db,
      kind: CLEANUP_JOB,
      load: (id: number) => options.runs.get(id),
      run: (row: CleanupRunRow, job: RunningJob) => this.execute(row, job),
      logger: options.logger,
      concurrency: 1,
      pollMs: options.pollMs ?? 5000,
      ...(options.staleMs !== undefined ? { staleMs: options.staleMs } : {}),
    };
    this.registryJobs = new JobWorker<CleanupRunRow>({
      ...common,
      takes: async () => ({ kind: 'registry' }),
      housekeeping: () => this.schedule(),
    });
    const engine = options.engine;
    this.volumeJobs = engine
      ? new JobWorker<CleanupRunRow>({ ...common, takes: async () => ({ kind: 'volumes', engine: await engine.id() }) })
      : undefined;
  }

  start(): void {
    this.registryJobs.start();
    this.volumeJobs?.start();
  }

  nudge(): void {
    this.registryJobs.nudge();
    this.volumeJobs?.nudge();
  }

  /** Stops claiming; a run in hand is stopped and given back (the next resumes it). */
  async stop(): Promise<void> {
    await Promise.all([this.registryJobs.stop(), this.volumeJobs?.stop()]);
  }

  /** Asks for the current period's runs (the registry's, and this engine's volumes'): one row each for all replicas. */
  async schedule(): Promise<void> {
    const { everyMs, runs, engine } = this.options;
    if (everyMs <= 0) return;
    const now = this.now();
    const period = String(Math.floor(now.getTime() / everyMs));
    if (this.asked === undefined) this.asked = period;
    if (this.asked === period) return;
    const engineId = engine ? await engine.id() : '';
    const made = await runs.schedule('registry', '', `registry:${everyMs}:${period}`, now);
    if (engine) await runs.schedule('volumes', engineId, `volumes:${engineId}:${everyMs}:${period}`, now);
    this.asked = period;
    if (made !== undefined) this.options.logger.info({ run: made }, 'clean-up due');
  }

  /**
   * Claims queued run `id` and runs it to its end here, as a worker would
   * (tests and benchmarks that wait for a run); undefined when another replica has it.
   */
  async runNow(id: number): Promise<CleanupRunRow | undefined> {
    const job = await holdJob(this.options.db, CLEANUP_JOB, id, `${this.registryJobs.id}:now`);
    if (!job) return undefined;
    const row = await this.options.runs.get(id);
    if (!row) return undefined;
    try {
      await this.execute(row, job);
    } finally {
      job.release();
    }
    return this.options.runs.get(id);
  }

  private async execute(row: CleanupRunRow, job: RunningJob): Promise<string> {
    const { cleanup, logger } = this.options;
    try {
      if (row.kind === 'registry') {
        const result = await cleanup.runRegistry(row.id, job);
        if (job.stopReason === 'stop') return 'stopped';
        await job.finish({
          status: result.failed ? 'failed' : 'succeeded',
          finished_at: this.now(),
          audit_cursor: result.auditCursor,
          summary: JSON.stringify(result.summary),
          message: result.failed ?? (job.stopReason === 'deadline' ? 'Stopped at its time limit; the next clean-up resumes it.' : null),
        });
        logger.info({ run: row.id, ...countsOf(result.summary), failed: result.failed }, 'registry clean-up ended');
        return result.failed ? 'failed' : 'succeeded';
      }
      const result = await cleanup.runVolumes(row.id, job);
      if (job.stopReason === 'stop') return 'stopped';
      await job.finish({
        status: 'succeeded',
        finished_at: this.now(),
        audit_cursor: result.auditCursor,
        summary: JSON.stringify(result.summary),
        usage: JSON.stringify(result.usage),
        message: job.stopReason === 'deadline' ? 'Stopped at its time limit; the next clean-up resumes it.' : null,
      });
      logger.info({ run: row.id, ...countsOf(result.summary) }, 'volume clean-up ended');
      return 'succeeded';
    } catch (err) {
      if (job.stopReason === 'stop') return 'stopped';
      const message = err instanceof Error ? err.message : String(err);
      await job.finish({ status: 'failed', finished_at: this.now(), message });
      logger.warn({ run: row.id, reason: message }, 'clean-up failed; the next one resumes it');
      return 'failed';
    }
  }
}

function countsOf(summary: { deletedManifests: number; removedVolumes: number; failures: number; problems: string[] }) {
  return {
    deleted: summary.deletedManifests,
    removedVolumes: summary.removedVolumes,
    failures: summary.failures,
    problems: summary.problems,
  };
}
