/**
 * Server-Sent Events for a job's progress (a check, a build): the headers go
 * with the first event, `done` follows the last one, and the stream counts
 * as closed when the reader left or the replica drains for shutdown (the
 * browser's EventSource then reconnects, to another replica if there is one).
 */
import type { Request, Response } from 'express';

export interface ProgressStream {
  /** Sends one state; `ended` adds the `done` event with the final status. */
  send(progress: unknown, ended?: { status: string }): void;
  closed(): boolean;
}

export function progressStream(req: Request, res: Response, draining: AbortSignal): ProgressStream {
  let gone = false;
  req.on('close', () => (gone = true));
  return {
    send(progress, ended) {
      if (!res.headersSent) {
        res.set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
        res.flushHeaders();
      }
      res.write(`event: progress\ndata: ${JSON.stringify(progress)}\n\n`);
      if (ended) res.write(`event: done\ndata: ${JSON.stringify(ended)}\n\n`);
    },
    closed: () => gone || draining.aborted,
  };
}
