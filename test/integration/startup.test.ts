import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const MAIN = path.resolve('dist/server/main.js');

function run(env: Record<string, string>, onStart?: (proc: ReturnType<typeof spawn>) => void) {
  const proc = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  onStart?.(proc);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

describe('start-up', () => {
  it('without JUPYTERHUB_API_TOKEN prints one clear line and exits non-zero', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-start-'));
    const result = await run({
      JUPYTERHUB_API_URL: 'http://127.0.0.1:8081/hub/api',
      CUSTOM_IMAGES_DATABASE_URL: `sqlite://${dir}/db.sqlite`,
    });
    expect(result.code).not.toBe(0);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/JUPYTERHUB_API_TOKEN is required/);
    // Nothing was created before the configuration was known to be good.
    expect(fs.existsSync(path.join(dir, 'db.sqlite'))).toBe(false);
  });

  it('on SIGTERM finishes the request in flight, closes the database and exits 0', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-start-'));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}/services/custom-images/`;
    let answered: Promise<number> | undefined;
    const result = await run(
      {
        JUPYTERHUB_API_URL: 'http://127.0.0.1:9/hub/api',
        JUPYTERHUB_API_TOKEN: 'x'.repeat(32),
        JUPYTERHUB_SERVICE_URL: `http://127.0.0.1:${port}`,
        CUSTOM_IMAGES_DATABASE_URL: `sqlite://${dir}/db.sqlite`,
      },
      (proc) => {
        proc.stdout?.on('data', (d: Buffer) => {
          if (!answered && d.toString().includes('custom-images listening')) {
            answered = fetch(`${base}healthz`).then((r) => r.status);
            // The signal arrives while the request is on its way.
            setImmediate(() => proc.kill('SIGTERM'));
          }
        });
      },
    );
    expect(result.code).toBe(0);
    expect(await answered).toBe(200);
    expect(result.stdout).toMatch(/"msg":"stopped"/);
  });
});
