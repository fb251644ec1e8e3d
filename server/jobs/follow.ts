/**
 * Following a job's progress from any replica: the row is read again every
 * half second (progress and log are stored as the job goes) until the job
 * ends, the reader leaves, or 15 minutes pass. A user has at most a few of
 * these open at once on one replica.
 */
import { tooManyRequests } from '../errors.js';

const FOLLOW_EVERY_MS = 500;
const FOLLOW_AT_MOST_MS = 15 * 60_000;

export class Followers {
  /** Open streams per user, on this replica. */
  private readonly open = new Map<string, number>();

  constructor(
    private readonly maxPerUser: number,
    /** What is followed, for the refusal: "running check", "build". */
    private readonly what: string,
  ) {}

  /** Sends `first` and every later state to `send` until `active` says the job ended, or `closed()`. */
  async follow<T>(
    owner: string,
    first: T,
    read: () => Promise<T>,
    active: (state: T) => boolean,
    send: (state: T) => void,
    closed: () => boolean,
  ): Promise<void> {
    const open = this.open.get(owner) ?? 0;
    if (open >= this.maxPerUser) {
      throw tooManyRequests(
        `${owner} follows ${open} ${this.what}${open === 1 ? '' : 's'} already (at most ${this.maxPerUser} at once). Close another page of a running ${this.what}, or reload this one later.`,
        10,
      );
    }
    this.open.set(owner, open + 1);
    try {
      const until = Date.now() + FOLLOW_AT_MOST_MS;
      for (let state = first; ; state = await read()) {
        send(state);
        if (!active(state) || closed() || Date.now() > until) return;
        await new Promise((r) => setTimeout(r, FOLLOW_EVERY_MS));
        if (closed()) return;
      }
    } finally {
      const left = (this.open.get(owner) ?? 1) - 1;
      if (left > 0) this.open.set(owner, left);
      else this.open.delete(owner);
    }
  }
}
