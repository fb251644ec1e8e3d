/** Prometheus metrics (prom-client), one registry per app: no global state. */
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  /** Request durations by method, route pattern and status (observed by requestLog). */
  duration: Histogram<'method' | 'route' | 'status'>;
}

/** Creates the registry with process metrics and the request-duration histogram. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'custom_images_' });
  const duration = new Histogram({
    name: 'custom_images_http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  return { registry, duration };
}
