/**
 * The Docker engine (dockerode, DOCKER_HOST or the local socket): pulls with
 * the user's credentials as a per-pull auth config, never written to the
 * engine's own configuration.
 */
import Docker from 'dockerode';
import { AppError } from '../errors.js';

export interface PullAuth {
  username: string;
  password: string;
  /** The registry as Docker keys it (https://index.docker.io/v1/ for Docker Hub). */
  serveraddress: string;
}

/** Progress of a pull, summed over its layers. */
export interface PullProgress {
  current: number;
  total: number;
  status: string;
}

/** dockerode reads DOCKER_HOST itself; we pass it explicitly so that config.ts stays the only reader. */
export function dockerFromHost(dockerHost: string | undefined): Docker {
  if (!dockerHost) return new Docker({ socketPath: '/var/run/docker.sock' });
  if (dockerHost.startsWith('unix://')) return new Docker({ socketPath: dockerHost.slice('unix://'.length) });
  const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
  return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: url.protocol === 'https:' ? 'https' : 'http' });
}

function engineError(err: unknown, what: string): AppError {
  const message = err instanceof Error ? err.message : String(err);
  const unreachable = /ECONNREFUSED|ENOENT|EACCES|socket hang up|ECONNRESET/.test(message);
  return new AppError(
    503,
    'conflict',
    unreachable ? `The Docker engine is not reachable (${what}); ask the hub admin to check it.` : `The Docker engine could not ${what}: ${message.replace(/\s+/g, ' ').slice(0, 300)}`,
    { cause: err, expose: true },
  );
}

export class DockerEngine {
  constructor(readonly docker: Docker) {}

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (err) {
      throw engineError(err, 'answer a ping');
    }
  }

  /** Pulls `reference` (pinned by digest), reporting progress; the auth config goes with this pull only. */
  async pull(reference: string, auth: PullAuth | undefined, onProgress?: (p: PullProgress) => void): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await this.docker.pull(reference, auth ? { authconfig: auth } : {})) as NodeJS.ReadableStream;
    } catch (err) {
      throw engineError(err, `pull ${reference}`);
    }
    const layers = new Map<string, { current: number; total: number }>();
    // The engine reports a failed pull inside the stream ({"error": …}), not as an HTTP error.
    let failure: string | undefined;
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null) => {
          if (err) reject(engineError(err, `pull ${reference}`));
          else if (failure) reject(new AppError(502, 'conflict', `The Docker engine could not pull ${reference}: ${failure}`, { expose: true }));
          else resolve();
        },
        (event: { id?: string; status?: string; error?: string; errorDetail?: { message?: string }; progressDetail?: { current?: number; total?: number } }) => {
          if (event.error || event.errorDetail) {
            failure = event.errorDetail?.message ?? event.error;
            return;
          }
          if (event.id && event.progressDetail?.total) layers.set(event.id, { current: event.progressDetail.current ?? 0, total: event.progressDetail.total });
          let current = 0;
          let total = 0;
          for (const l of layers.values()) {
            current += l.current;
            total += l.total;
          }
          onProgress?.({ current, total, status: event.status ?? '' });
        },
      );
    });
  }

  async hasImage(reference: string): Promise<boolean> {
    try {
      await this.docker.getImage(reference).inspect();
      return true;
    } catch {
      return false;
    }
  }
}
