/**
 * The service as a standalone process (node dist/server/main.js), for tests
 * about its own life: restarts, replicas, a Docker engine going away. No hub
 * is needed for what these tests do (check jobs, /healthz).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Knex } from 'knex';
import { CheckStore } from '../../server/checks/store.js';
import { checkRow } from './checkRows.js';
import { ImageStore } from '../../server/images/store.js';
import { freePort } from './registry.js';

export interface ServiceProcess {
  url: string;
  proc: ChildProcess;
  log(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startService(env: Record<string, string>): Promise<ServiceProcess> {
  const port = await freePort();
  let output = '';
  const proc = spawn(process.execPath, [path.resolve('dist/server/main.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      JUPYTERHUB_API_URL: 'http://127.0.0.1:9/hub/api',
      JUPYTERHUB_API_TOKEN: 'standalone-test-token-0123456789',
      JUPYTERHUB_SERVICE_URL: `http://127.0.0.1:${port}`,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}/services/custom-images/`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`service exited: ${output}`);
    try {
      if ((await fetch(`${url}healthz`)).ok) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`service did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    proc,
    log: () => output,
    kill: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        // A process ended by a signal has signalCode set and exitCode null.
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      }),
  };
}

/** Saves an image for `owner` on the default system and queues a check of it, as the API would. */
export async function queueCheck(db: Knex, owner: string, reference: string, kind: 'static' | 'full'): Promise<number> {
  const now = new Date();
  const imageId = await new ImageStore(db).insert(
    {
      owner,
      name: reference,
      system: 'default',
      referenceInput: reference,
      reference,
      registry: reference.split('/')[0] ?? '',
      mountPath: null,
    },
    now,
  );
  return new CheckStore(db).insert(checkRow({ imageId, owner, reference, kind, createdAt: now }));
}

export async function waitForStatus(
  db: Knex,
  id: number,
  accept: (status: string) => boolean,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = (await db('checks').where({ id }).first()) as Record<string, unknown>;
    if (accept(String(row.status))) return row;
    if (Date.now() > deadline) throw new Error(`check ${id} is ${String(row.status)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
