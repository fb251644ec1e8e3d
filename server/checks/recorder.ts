/**
 * What a running check has to say, stored as it goes so that any replica can
 * show it: log lines and progress (written at the kind's pace by the job's
 * guarded writer), then the result once.
 */
import type { Finding } from '../inspect/analyze.js';
import type { RunningJob } from '../jobs/running.js';
import type { CheckProgress } from './staticCheck.js';
import type { CheckStatus } from './status.js';
import { checkColumns, type CheckRow } from './store.js';

export class CheckRecorder {
  private readonly lines: string[] = [];
  private progress: CheckProgress;
  private readonly started: Date;
  /** The result is stored: whatever the job still says (a check stopped at its deadline) is dropped. */
  private done: CheckStatus | undefined;
  private resolveEnded!: (status: CheckStatus) => void;
  /** Resolves with the stored status once the result is written, by the run or by its deadline. */
  readonly ended = new Promise<CheckStatus>((resolve) => (this.resolveEnded = resolve));

  constructor(
    private readonly job: RunningJob,
    row: CheckRow,
    private readonly now: () => Date,
  ) {
    this.started = now();
    this.progress = row.progress ?? { phase: 'resolve', message: '', layersDone: 0, layersTotal: 0, bytesRead: 0, bytesTotal: 0 };
  }

  /** One line of the check's log, as a build log has. */
  readonly log = (line: string): void => {
    if (this.done) return;
    this.lines.push(line);
    this.save();
  };

  readonly report = (progress: Partial<CheckProgress>): void => {
    if (this.done) return;
    this.progress = { ...this.progress, ...progress };
    this.save();
  };

  /** Stores the result with the whole log, once; returns the status stored. */
  async finish(status: CheckStatus, findings: Finding[], extra: Partial<CheckRow> = {}): Promise<CheckStatus> {
    if (this.done) return this.done;
    this.done = status;
    await this.job.finish(
      checkColumns({
        status,
        findings,
        log: this.text(),
        progress: { ...this.progress, phase: 'done', message: status },
        finishedAt: this.now(),
        durationMs: this.now().getTime() - this.started.getTime(),
        ...extra,
      }),
    );
    this.resolveEnded(status);
    return status;
  }

  private save(): void {
    this.job.progress(() => checkColumns({ progress: { ...this.progress }, log: this.text() }));
  }

  private text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}
