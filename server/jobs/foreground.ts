/**
 * Whether someone is waiting on this replica right now: a launch is noted
 * (someone pressed Start, the spawner asks), and background work that can
 * wait (the clean-up's registry requests) asks before each step and gives
 * way for a while. Only launches count: the clean-up's own status page polls,
 * scrapes and probes come on a schedule and would keep it narrow for ever.
 */
export class Foreground {
  private lastAt = Number.NEGATIVE_INFINITY;

  /** @param quietMs how long after the last launch the replica counts as idle again */
  constructor(
    private readonly quietMs = 2000,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  noteRequest(): void {
    this.lastAt = this.clock();
  }

  /** True while a launch came within the last `quietMs`. */
  busy(): boolean {
    return this.clock() - this.lastAt < this.quietMs;
  }
}
