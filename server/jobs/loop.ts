/**
 * A background loop: runs `tick` every `pollMs`, or at once when nudged,
 * never two ticks at a time. Work queued in the database is picked up by the
 * next tick of any replica, so a missed nudge only costs one poll.
 */
export class TickLoop {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private current: Promise<void> | undefined;

  constructor(
    private readonly tick: () => Promise<void>,
    private readonly pollMs: number,
  ) {}

  start(): void {
    this.stopped = false;
    void this.run().then(() => this.schedule());
  }

  /** Runs a tick now (after a request queued work) instead of at the next poll. */
  nudge(): void {
    if (!this.stopped) void this.run();
  }

  /** No more ticks; waits for the one in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.current;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.run().then(() => this.schedule()), this.pollMs);
    this.timer.unref();
  }

  private run(): Promise<void> {
    // A nudge during a tick is covered by that tick or the next poll.
    this.current ??= this.tick().finally(() => {
      this.current = undefined;
    });
    return this.current;
  }
}
