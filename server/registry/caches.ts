/**
 * What the registry client remembers between sessions: bearer tokens until
 * they expire, and a tag's digest for a few seconds (launches ask often).
 * Keys name the credentials by a hash, so that no cache holds a password.
 */

/** Bearer tokens, by realm, scope and credential. */
export class TokenCache {
  private readonly tokens = new Map<string, { value: string; expires: number }>();

  constructor(private readonly now: () => number) {}

  get(key: string): string | undefined {
    const hit = this.tokens.get(key);
    if (hit && hit.expires > this.now()) return hit.value;
    if (hit) this.tokens.delete(key);
    return undefined;
  }

  set(key: string, value: string, expiresInSeconds: number): void {
    // Renewed a little early, so that a token does not expire mid-request.
    this.tokens.set(key, { value, expires: this.now() + Math.max(0, expiresInSeconds - 10) * 1000 });
  }
}

/** A tag's digest as answered within the last `ttlMs`; callers asking at once share one request. */
export class DigestCache {
  private readonly digests = new Map<string, { digest: string | undefined; expires: number }>();
  private readonly pending = new Map<string, Promise<string | undefined>>();

  constructor(
    readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  /** The digest for `key`, or what `ask` answers (once for every caller meanwhile). */
  get(key: string, ask: () => Promise<string | undefined>): Promise<string | undefined> {
    const hit = this.digests.get(key);
    if (hit && hit.expires > this.now()) return Promise.resolve(hit.digest);
    let pending = this.pending.get(key);
    if (!pending) {
      pending = ask()
        .then((digest) => {
          if (this.ttlMs > 0) {
            if (this.digests.size > 10_000) this.digests.clear();
            this.digests.set(key, { digest, expires: this.now() + this.ttlMs });
          }
          return digest;
        })
        .finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    return pending;
  }
}
