/**
 * Writes the latest state of a long job (progress, log) at most every
 * `everyMs`, with a trailing write so that the last change before a quiet
 * stretch is stored too; writes happen one after another, never at once.
 * The state is taken as a snapshot function, called only when a write is
 * due: a job that reports every line does not copy its whole log each time.
 */
export class ThrottledWriter<T> {
  private latest: (() => T) | undefined;
  private lastWrite = 0;
  private trailing: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly write: (value: T) => Promise<void>,
    private readonly everyMs: number,
  ) {}

  /** Takes `snapshot` as the newest state; it is called and written now or within `everyMs`. */
  set(snapshot: () => T): void {
    this.latest = snapshot;
    const wait = this.everyMs - (Date.now() - this.lastWrite);
    if (wait > 0) {
      this.trailing ??= setTimeout(() => {
        this.trailing = undefined;
        this.writeNow();
      }, wait);
      return;
    }
    this.writeNow();
  }

  /** Writes what is pending and waits for every write; a failed write is dropped (the next one carries the state). */
  async flush(): Promise<void> {
    if (this.trailing) {
      clearTimeout(this.trailing);
      this.trailing = undefined;
      this.writeNow();
    }
    await this.writing;
  }

  private writeNow(): void {
    const snapshot = this.latest;
    if (snapshot === undefined) return;
    const value = snapshot();
    this.lastWrite = Date.now();
    this.writing = this.writing.then(() => this.write(value)).catch(() => undefined);
  }
}
