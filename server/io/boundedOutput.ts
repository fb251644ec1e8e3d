/**
 * Output of a process kept within a size: its beginning and its end, with
 * the count of what was dropped between them (a check's run, a build's log).
 */
/** Keeps the first and the last `limit / 2` bytes of a stream of output. */
export class BoundedOutput {
  private head = '';
  private tail = '';
  private dropped = 0;

  constructor(private readonly limit: number) {}

  add(text: string): void {
    const half = Math.floor(this.limit / 2);
    if (this.head.length < half) {
      const take = text.slice(0, half - this.head.length);
      this.head += take;
      text = text.slice(take.length);
    }
    if (text.length === 0) return;
    this.tail += text;
    if (this.tail.length > half) {
      this.dropped += this.tail.length - half;
      this.tail = this.tail.slice(this.tail.length - half);
    }
  }

  toString(): string {
    return this.dropped > 0 ? `${this.head}\n… ${this.dropped} bytes not kept …\n${this.tail}` : this.head + this.tail;
  }
}
