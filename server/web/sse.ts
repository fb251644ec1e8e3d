/**
 * Server-Sent Events for a job's progress (a check, a build): the headers go
 * with the first event, `done` follows the last one, and the stream counts
 * as closed when the reader left or the replica drains for shutdown (the
 * browser's EventSource then reconnects, to another replica if there is one).
 */
import type { Request, RequestHandler, Response } from 'express';
import type { HubIdentity } from '../hub/identity.js';
import { loggedInUser } from './auth.js';
import { parseId } from './params.js';

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

/** How a service follows one job of one of `owner`'s images, giving each state to `send` until it ends. */
export type FollowJob<State> = (
  actor: HubIdentity,
  owner: string,
  imageId: number,
  job: number,
  send: (state: State) => void,
  closed: () => boolean,
) => Promise<void>;

/**
 * The route that streams one job of the logged-in user's image
 * (`/images/:id/…/:<jobParam>/events`): each state as `present` makes it an
 * event, with the final status once the job ended.
 */
export function jobEvents<State>(options: {
  draining: AbortSignal;
  /** The route parameter of the job's number, and what it is called in a 404. */
  jobParam: string;
  jobName: string;
  follow: FollowJob<State>;
  present: (state: State) => { event: unknown; ended?: { status: string } | undefined };
}): RequestHandler {
  return async (req, res) => {
    const user = loggedInUser(req);
    const stream = progressStream(req, res, options.draining);
    await options.follow(
      user,
      user.name,
      parseId(req.params.id),
      parseId(req.params[options.jobParam], options.jobName),
      (state) => {
        const { event, ended } = options.present(state);
        stream.send(event, ended);
      },
      stream.closed,
    );
    res.end();
  };
}
