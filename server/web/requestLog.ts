/**
 * The access log and the request-duration histogram, from one listener per
 * request: a logger per request cost more than the launch's database read
 * (bench/README.md). Query strings never reach the log: they carry OAuth
 * codes and states.
 */
import type { RequestHandler } from 'express';
import type { Histogram } from 'prom-client';
import type { Logger } from '../log.js';

export function requestLog(deps: { logger: Logger; duration: Histogram<'method' | 'route' | 'status'> }): RequestHandler {
  let lastId = 0;
  return (req, res, next) => {
    const start = process.hrtime.bigint();
    req.id = ++lastId;
    // 'close' comes once per response: after it was sent, or when the client went away first.
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const status = res.writableFinished ? res.statusCode : 499;
      // The route pattern, not the URL, so that ids do not make new series.
      const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
      deps.duration.observe({ method: req.method, route, status: String(status) }, seconds);
      const path = req.originalUrl.split('?')[0] ?? '';
      const level = status >= 500 ? 'error' : path.endsWith('/healthz') ? 'debug' : 'info';
      if (!deps.logger.isLevelEnabled(level)) return;
      deps.logger[level](
        { req: { id: req.id, method: req.method, path }, res: { statusCode: status }, responseTime: Math.round(seconds * 1e4) / 10 },
        res.writableFinished ? 'request completed' : 'request aborted by the client',
      );
    });
    next();
  };
}
