/**
 * What a running check has to say, stored as it goes so that any replica can
 * show it: log lines and progress, written at most twice a second, then the
 * result once.
 */
import type { Finding } from '../inspect/analyze.js';
import { ThrottledWriter } from '../jobs/throttle.js';
import type { CheckProgress } from './staticCheck.js';
import type { CheckRow, CheckStatus, CheckStore } from './store.js';

const PROGRESS_EVERY_MS = 500;

export class CheckRecorder {
  private readonly lines: string[] = [];
  private progress: CheckProgress;
  private readonly writer: ThrottledWriter<{ progress: CheckProgress; log: string }>;
  private readonly started: Date;
  /** The result is stored: whatever the job still says (a check stopped at its deadline) is dropped. */
  private done: CheckStatus | undefined;

  constructor(
    private readonly store: CheckStore,
    private readonly job: CheckRow,
    private readonly now: () => Date,
  ) {
    this.started = now();
    this.progress = job.progress ?? { phase: 'resolve', message: '', layersDone: 0, layersTotal: 0, bytesRead: 0, bytesTotal: 0 };
    this.writer = new ThrottledWriter((snapshot) => store.update(job.id, snapshot), PROGRESS_EVERY_MS);
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
    await this.writer.flush();
    await this.store.update(this.job.id, {
      status,
      findings,
      log: this.text(),
      progress: { ...this.progress, phase: 'done', message: status },
      finishedAt: this.now(),
      durationMs: this.now().getTime() - this.started.getTime(),
      ...extra,
    });
    return status;
  }

  private save(): void {
    this.writer.set(() => ({ progress: { ...this.progress }, log: this.text() }));
  }

  private text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}
