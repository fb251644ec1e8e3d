/**
 * A real JupyterHub (Debian's, 3.x) started with jupyterhub_config/ for a
 * test file: its own port range, state folder and service database.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestHub {
  /** The proxy's public URL, e.g. http://127.0.0.1:18100 */
  url: string;
  /** The service's URL through the proxy, ending in / */
  serviceUrl: string;
  /** The hub's REST API through the proxy. */
  apiUrl: string;
  /** The service's own database (SQLite) */
  databaseUrl: string;
  dir: string;
  /** A token with admin:users and tokens, for setting up users. */
  adminToken: string;
  /** The spawner hook's token (launch scope). */
  launchToken: string;
  /** The custom-images service's own API token. */
  serviceToken: string;
  /** Everything the hub and the service printed. */
  log(): string;
  /** Creates a hub user (idempotent) and returns a token for them. */
  userToken(name: string, options?: { scopes?: string[]; admin?: boolean }): Promise<string>;
  /** Creates many users at once and returns a token for each, by name. */
  userTokens(names: string[]): Promise<Map<string, string>>;
  /** The pid of the service process the hub started (it listens on the proxy's port + 10). */
  servicePid(): number;
  stop(): Promise<void>;
}

const JUPYTERHUB = process.env.JUPYTERHUB_BIN ?? '/usr/bin/jupyterhub';
const ROOT = path.resolve(import.meta.dirname, '../..');

async function waitFor(url: string, timeoutMs: number, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`jupyterhub exited with ${proc.exitCode}:\n${log()}`);
    try {
      // Each try bounded: a listener that accepts but never answers must not outlast the deadline.
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${url}:\n${log()}`);
}

/** The pids of this user's processes whose environment holds `entry` (NAME=value). */
function processesWithEnv(entry: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(entry)) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/** Starts the demo hub on `port` (the proxy; the hub, proxy API and service use port+81, +1, +10). */
export async function startHub(port: number, extraEnv: Record<string, string> = {}): Promise<TestHub> {
  if (!fs.existsSync(path.join(ROOT, 'dist/server/main.js'))) {
    throw new Error('dist/ is missing: run npm run build first (npm test does)');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-hub-'));
  const adminToken = randomBytes(16).toString('hex');
  const launchToken = randomBytes(16).toString('hex');
  // Given by a test that starts the service itself (CUSTOM_IMAGES_DEMO_EXTERNAL_SERVICE).
  const serviceToken = extraEnv.CUSTOM_IMAGES_SERVICE_TOKEN ?? randomBytes(16).toString('hex');
  const databaseUrl = `sqlite://${path.join(dir, 'custom-images.sqlite')}`;
  let output = '';
  const proc = spawn(JUPYTERHUB, ['-f', path.join(ROOT, 'jupyterhub_config/jupyterhub_config.py')], {
    cwd: dir,
    env: {
      ...process.env,
      CUSTOM_IMAGES_DEMO_PORT: String(port),
      CUSTOM_IMAGES_DEMO_DIR: dir,
      CUSTOM_IMAGES_DEMO_ADMIN_TOKEN: adminToken,
      CUSTOM_IMAGES_LAUNCH_TOKEN: launchToken,
      CUSTOM_IMAGES_SERVICE_TOKEN: serviceToken,
      CUSTOM_IMAGES_DATABASE_URL: databaseUrl,
      CUSTOM_IMAGES_LOG_LEVEL: 'debug',
      // The configured default system unless a test seeds its own.
      CUSTOM_IMAGES_SYSTEMS_FILE: '',
      // Registry checks only, unless a test is about starting images in Docker.
      CUSTOM_IMAGES_RUN_CHECKS: 'false',
      // Local processes, unless a test is about DockerSpawner.
      CUSTOM_IMAGES_DEMO_SPAWNER: 'local',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const hub: TestHub = {
    url,
    serviceUrl: `${url}/services/custom-images/`,
    apiUrl: `${url}/hub/api`,
    databaseUrl,
    dir,
    adminToken,
    launchToken,
    serviceToken,
    log: () => output,
    async userToken(name, options = {}) {
      const headers = { Authorization: `token ${adminToken}`, 'Content-Type': 'application/json' };
      const created = await fetch(`${url}/hub/api/users/${name}`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ admin: options.admin ?? false }),
      });
      if (created.status !== 201 && created.status !== 409) throw new Error(`create user ${name}: ${created.status}`);
      const body: Record<string, unknown> = { note: 'test' };
      if (options.scopes) body.scopes = options.scopes;
      const res = await fetch(`${url}/hub/api/users/${name}/tokens`, { method: 'POST', headers, body: JSON.stringify(body) });
      if (res.status !== 201) throw new Error(`token for ${name}: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { token: string }).token;
    },
    async userTokens(names) {
      const headers = { Authorization: `token ${adminToken}`, 'Content-Type': 'application/json' };
      const created = await fetch(`${url}/hub/api/users`, { method: 'POST', headers, body: JSON.stringify({ usernames: names }) });
      if (created.status !== 201 && created.status !== 409) throw new Error(`create users: ${created.status} ${await created.text()}`);
      const tokens = new Map<string, string>();
      const queue = [...names];
      // A few at a time: the hub writes each token to its own database.
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
            const res = await fetch(`${url}/hub/api/users/${name}/tokens`, {
              method: 'POST',
              headers,
              body: JSON.stringify({ note: 'test' }),
            });
            if (res.status !== 201) throw new Error(`token for ${name}: ${res.status} ${await res.text()}`);
            tokens.set(name, ((await res.json()) as { token: string }).token);
          }
        }),
      );
      return tokens;
    },
    servicePid() {
      const out = execFileSync('ss', ['-Hltnp', `sport = :${port + 10}`], { encoding: 'utf8' });
      const pid = /pid=(\d+)/.exec(out)?.[1];
      if (!pid) throw new Error(`nothing listens on ${port + 10}`);
      return Number(pid);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill('SIGKILL');
          await exited;
        }
      }
      // A hub killed before its clean-up leaves its proxy (a session of its own) on the ports of the
      // next hub started there; JupyterHub removes the pid file when it stopped the proxy itself.
      // Likewise its service (JupyterHub restarts a managed service that exits, also during a test that stops it).
      for (const pid of processesWithEnv(`JUPYTERHUB_SERVICE_URL=http://127.0.0.1:${port + 10}`)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      const pidFile = path.join(dir, 'proxy.pid');
      const proxyPid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : 0;
      if (proxyPid > 0) {
        try {
          process.kill(proxyPid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(`${hub.serviceUrl}healthz`, 60_000, proc, hub.log);
    await waitFor(`${url}/hub/api/`, 10_000, proc, hub.log);
  } catch (err) {
    await hub.stop();
    throw err;
  }
  return hub;
}

/** Follows a check job through the API until it has ended. */
export async function waitForCheck(hub: TestHub, token: string, id: number, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${hub.serviceUrl}api/v1/checks/${id}`, { headers: { Authorization: `token ${token}` } });
    const body = (await res.json()) as Record<string, unknown>;
    if (body.status !== 'queued' && body.status !== 'running') return body;
    if (Date.now() > deadline) throw new Error(`check ${id} still ${String(body.status)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A call to the hub's REST API with the admin token; the parsed answer (null for an empty one). */
export async function hubApi(hub: TestHub, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${hub.apiUrl}${path}`, {
    method,
    headers: { Authorization: `token ${hub.adminToken}`, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
}

type UserModel = { servers?: Record<string, { ready: boolean; pending: string | null }> };

/** Waits until `user`'s default server is ready, or has gone (a failed start); returns whether it is ready. */
export async function waitForServer(hub: TestHub, user: string, timeoutMs = 120_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const model = (await hubApi(hub, 'GET', `/users/${user}`)).body as UserModel;
    const server = model.servers?.[''];
    if (server?.ready) return true;
    if (!server) return false;
    if (Date.now() > deadline) throw new Error(`${user}'s server still pending (${String(server.pending)}) after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Starts `user`'s server through the hub's REST API with these user_options (the spawn form's output). */
export async function startServer(
  hub: TestHub,
  user: string,
  options: Record<string, unknown>,
): Promise<{ status: number; body: unknown }> {
  return hubApi(hub, 'POST', `/users/${user}/server`, options);
}

/** Stops `user`'s server and waits until the hub has no server for them. */
export async function stopServer(hub: TestHub, user: string): Promise<void> {
  await hubApi(hub, 'DELETE', `/users/${user}/server`);
  for (let i = 0; i < 300; i++) {
    const model = (await hubApi(hub, 'GET', `/users/${user}`)).body as UserModel;
    if (!model.servers || Object.keys(model.servers).length === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${user}'s server did not stop`);
}

/**
 * Runs the hook's pytest suite (`tests`, relative to `cwd`) with `python`, its live tests against
 * this hub's service and `image`; returns pytest's output after asserting nothing failed or was skipped.
 */
export function runHookTests(hub: TestHub, options: { python: string; cwd: string; tests: string; image: string }): string {
  const run = spawnSync(options.python, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', options.tests], {
    cwd: options.cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      CUSTOM_IMAGES_TEST_API_URL: `${hub.serviceUrl}api/v1/`,
      CUSTOM_IMAGES_TEST_LAUNCH_TOKEN: hub.launchToken,
      CUSTOM_IMAGES_TEST_ADMIN_TOKEN: hub.adminToken,
      CUSTOM_IMAGES_TEST_HUB_API: hub.apiUrl,
      CUSTOM_IMAGES_TEST_IMAGE: options.image,
    },
    timeout: 120_000,
  });
  if (run.status !== 0) throw new Error(`pytest exited with ${run.status}:\n${run.stdout}\n${run.stderr}`);
  // The live tests ran too: nothing was skipped for want of the service.
  if (!/\d+ passed/.test(run.stdout) || /skipped/.test(run.stdout)) throw new Error(`pytest skipped tests:\n${run.stdout}`);
  return run.stdout;
}

/** A JSON request to the service's API v1 as the holder of `token`: the status and the parsed body ({} when empty). */
export async function serviceApi(
  hub: Pick<TestHub, 'serviceUrl'>,
  token: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${hub.serviceUrl}api/v1/${route}`, {
    method,
    headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}
