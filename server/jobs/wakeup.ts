/**
 * A service that queues a job wakes the worker that runs it, and the worker
 * is made after the service (it runs the service's work): the composition
 * root makes the wake-up first, hands `ring` to the service, and lets the
 * worker answer it once the worker exists. Until then a ring does nothing:
 * workers also poll.
 */
export class Wakeup {
  private answer: (() => void) | undefined;

  /** Wakes the worker, if one answers yet. */
  readonly ring = (): void => {
    this.answer?.();
  };

  /** The worker that answers: `wake` runs at every ring from now on. */
  answerWith(wake: () => void): void {
    this.answer = wake;
  }
}
