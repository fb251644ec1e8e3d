/**
 * Real registries for tests: Debian's docker-registry (distribution 2.8) on
 * 127.0.0.1, without auth, with htpasswd Basic auth, and with token auth
 * backed by a token service the test runs and the registry trusts. All three
 * share one storage folder, so an image pushed once is on all of them.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { removeImagesFrom } from './docker.js';

const REGISTRY_BIN = process.env.DOCKER_REGISTRY_BIN ?? '/usr/bin/docker-registry';

export const USER = 'researcher';
export const PASSWORD = 'registry-pass-7d1e';

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

async function waitForPort(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited: ${log()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry did not listen on ${port}: ${log()}`);
}

export interface TestRegistries {
  /** host:port of each registry */
  open: string;
  basic: string;
  token: string;
  /** Requests the token service refused (wrong password) or answered, for assertions. */
  tokenRequests: Array<{ user: string | undefined; scope: string; refused?: true }>;
  /** The registries as an admin trusts them (host:port each), for CUSTOM_IMAGES_TRUSTED_REGISTRIES. */
  trusted: string[];
  /** The folder all three store in, and the open registry's configuration (for `docker-registry garbage-collect`). */
  storage: string;
  openConfig: string;
  stop(): Promise<void>;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export interface RegistryOptions {
  /**
   * More accounts for the token service: user name to password and the
   * repository prefix that user alone may pull (e.g. `load/alice/`).
   */
  accounts?: Map<string, { password: string; repositories: string }>;
}

/** Starts the three registries and the token service. */
export async function startRegistries(options: RegistryOptions = {}): Promise<TestRegistries> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-registry-'));
  const storage = path.join(dir, 'storage');
  fs.mkdirSync(storage);
  execFileSync('htpasswd', ['-Bbc', path.join(dir, 'htpasswd'), USER, PASSWORD], { stdio: 'ignore' });
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=ci-token-issuer',
    ],
    { stdio: 'ignore' },
  );
  const key = fs.readFileSync(path.join(dir, 'key.pem'), 'utf8');
  const certDer = new X509Certificate(fs.readFileSync(path.join(dir, 'cert.pem'))).raw;

  const [openPort, basicPort, tokenPort, issuerPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const tokenRequests: TestRegistries['tokenRequests'] = [];
  const service = 'ci-registry';

  // The token service: researcher/PASSWORD may pull anything; anonymous only public/*.
  const issuer = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${issuerPort}`);
    const scope = url.searchParams.get('scope') ?? '';
    const auth = req.headers.authorization;
    let user: string | undefined;
    let prefix = '';
    if (auth?.startsWith('Basic ')) {
      const [u = '', p] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      const account = options.accounts?.get(u);
      if (account && account.password === p) {
        prefix = account.repositories;
      } else if (u !== USER || p !== PASSWORD) {
        tokenRequests.push({ user: u, scope, refused: true });
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"wrong credentials"}');
        return;
      }
      user = u;
    }
    tokenRequests.push({ user, scope });
    const [, name = '', actions = ''] = scope.split(':');
    const granted = (user !== undefined && name.startsWith(prefix)) || name.startsWith('public/') ? actions.split(',').filter(Boolean) : [];
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = {
      iss: 'ci-issuer',
      sub: user ?? '',
      aud: service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access: name ? [{ type: 'repository', name, actions: granted }] : [],
    };
    const unsigned = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = createSign('RSA-SHA256').update(unsigned).sign(key);
    res
      .writeHead(200, { 'Content-Type': 'application/json' })
      .end(JSON.stringify({ token: `${unsigned}.${base64url(signature)}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => issuer.listen(issuerPort, '127.0.0.1', r));

  const config = (port: number, auth: string) => `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: ${randomBytes(16).toString('hex')}
${auth}`;
  const configs = [
    [openPort, ''],
    [basicPort, `auth:\n  htpasswd:\n    realm: ci\n    path: ${path.join(dir, 'htpasswd')}\n`],
    [
      tokenPort,
      `auth:\n  token:\n    realm: http://127.0.0.1:${issuerPort}/token\n    service: ${service}\n    issuer: ci-issuer\n    rootcertbundle: ${path.join(dir, 'cert.pem')}\n`,
    ],
  ] as const;
  const procs: ChildProcess[] = [];
  for (const [i, [port, auth]] of configs.entries()) {
    const file = path.join(dir, `config-${i}.yml`);
    fs.writeFileSync(file, config(port, auth));
    let output = '';
    const proc = spawn(REGISTRY_BIN, ['serve', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    procs.push(proc);
    await waitForPort(port, proc, () => output);
  }
  return {
    open: `127.0.0.1:${openPort}`,
    basic: `127.0.0.1:${basicPort}`,
    token: `127.0.0.1:${tokenPort}`,
    tokenRequests,
    trusted: [`127.0.0.1:${openPort}`, `127.0.0.1:${basicPort}`, `127.0.0.1:${tokenPort}`],
    storage,
    openConfig: path.join(dir, 'config-0.yml'),
    async stop() {
      for (const proc of procs) proc.kill('SIGTERM');
      await new Promise<void>((r) => issuer.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
      // What the service pulled from them into the engine (run checks, pre-pulls, launches).
      await removeImagesFrom([`127.0.0.1:${openPort}`, `127.0.0.1:${basicPort}`, `127.0.0.1:${tokenPort}`]);
    },
  };
}

/** Passes a request on to the registry at `target` (host:port) and its answer back. */
function forward(target: string, req: http.IncomingMessage, res: http.ServerResponse): void {
  const [host, port] = target.split(':');
  const upstream = http.request({ host, port: Number(port), path: req.url, method: req.method, headers: req.headers }, (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.pipe(res);
  });
  upstream.on('error', () => res.destroy());
  req.pipe(upstream);
}

/**
 * A slow network in front of a registry: each request waits `delayMs` before
 * it is forwarded. Returns host:port and a stop function.
 */
export async function slowProxy(target: string, delayMs: number): Promise<{ host: string; stop(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    setTimeout(() => forward(target, req, res), delayMs);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { host: `127.0.0.1:${port}`, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

/** What a {@link faultyProxy} does with the next requests. */
export type Fault =
  | { kind: 'pass' }
  | { kind: 'status'; status: number; retryAfter?: string }
  | { kind: 'stall' }
  /** Blobs arrive one byte every `everyMs`: never silent long enough for a timeout, never done. */
  | { kind: 'trickle'; everyMs: number };

/**
 * A registry that misbehaves on demand: in front of a real one, it forwards
 * requests ("pass"), answers them all with a status (500, 429 with
 * Retry-After), or accepts them and never answers ("stall"). Counts and
 * lists what it saw, so a test can tell that retries happened.
 */
export async function faultyProxy(
  target: string,
): Promise<{ host: string; set(fault: Fault): void; seen: Record<string, number>; requests: string[]; stop(): Promise<void> }> {
  let fault: Fault = { kind: 'pass' };
  const seen: Record<string, number> = {};
  const requests: string[] = [];
  const stalled = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    const key = fault.kind === 'status' ? String(fault.status) : fault.kind;
    seen[key] = (seen[key] ?? 0) + 1;
    if (fault.kind === 'stall') {
      stalled.add(res);
      res.on('close', () => stalled.delete(res));
      return;
    }
    if (fault.kind === 'status') {
      res.writeHead(fault.status, { 'Content-Type': 'application/json', ...(fault.retryAfter ? { 'Retry-After': fault.retryAfter } : {}) });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `injected ${fault.status}` }] }));
      return;
    }
    if (fault.kind === 'trickle' && req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '')) {
      const everyMs = fault.everyMs;
      stalled.add(res);
      res.on('close', () => stalled.delete(res));
      const [host, port] = target.split(':');
      http
        .get({ host, port: Number(port), path: req.url, headers: req.headers }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.once('readable', function drip(): void {
            if (res.destroyed) {
              up.destroy();
              return;
            }
            const byte = up.read(1) as Buffer | null;
            if (byte === null) {
              up.once('readable', drip);
              return;
            }
            res.write(byte);
            setTimeout(drip, everyMs);
          });
        })
        .on('error', () => res.destroy());
      return;
    }
    forward(target, req, res);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${port}`,
    set: (next) => {
      fault = next;
    },
    seen,
    requests,
    stop: () =>
      new Promise<void>((r) => {
        for (const res of stalled) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * A slow link in front of a registry: blob downloads are sent at
 * `bytesPerSecond`, everything else passes at once. Lists what it saw.
 */
export async function throttledProxy(
  target: string,
  bytesPerSecond: number,
): Promise<{ host: string; requests: string[]; stop(): Promise<void> }> {
  const requests: string[] = [];
  const [host, port] = target.split(':');
  const server = http.createServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    const upstream = http.request({ host, port: Number(port), path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (!/\/blobs\/sha256:/.test(req.url ?? '') || req.method !== 'GET') {
        up.pipe(res);
        return;
      }
      // Each chunk is followed by the pause its size takes at the rate.
      up.on('data', (chunk: Buffer) => {
        up.pause();
        res.write(chunk);
        setTimeout(() => up.resume(), (chunk.length / bytesPerSecond) * 1000);
      });
      up.on('end', () => res.end());
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const listenPort = await freePort();
  await new Promise<void>((r) => server.listen(listenPort, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${listenPort}`,
    requests,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * The registry's own garbage collection (`docker-registry garbage-collect`)
 * over a configuration's storage: removes the blobs no manifest references
 * any more. Returns what it printed.
 */
export function garbageCollect(config: string): string {
  return execFileSync(REGISTRY_BIN, ['garbage-collect', config], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Bytes of the files under `dir` (what a registry's storage takes on disk). */
export function bytesOnDisk(dir: string): number {
  let sum = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) sum += fs.statSync(path.join(entry.parentPath, entry.name)).size;
  }
  return sum;
}

/** What a {@link scriptedProxy} does with one request: pass it on, answer it with a status, or pass it on and drop the answer. */
export type ProxyAction = 'pass' | 'drop-answer' | { status: number };

/**
 * A registry whose answers a test scripts request by request: `script`
 * decides for each (with how many of its method came before), and every
 * request is logged with the status the client got (0: no answer); `peak`
 * holds the most requests of each method it had open at once.
 */
export async function scriptedProxy(
  target: string,
  script: (req: { method: string; url: string }, nthOfMethod: number) => ProxyAction,
): Promise<{
  host: string;
  log: Array<{ method: string; url: string; status: number }>;
  peak: Map<string, number>;
  setScript(next: typeof script): void;
  stop(): Promise<void>;
}> {
  const open = new Map<string, number>();
  const peak = new Map<string, number>();
  let current = script;
  const log: Array<{ method: string; url: string; status: number }> = [];
  const counts = new Map<string, number>();
  const [host, port] = target.split(':');
  const server = http.createServer((req, res) => {
    const method = req.method ?? '';
    const url = req.url ?? '';
    const n = (counts.get(method) ?? 0) + 1;
    counts.set(method, n);
    open.set(method, (open.get(method) ?? 0) + 1);
    peak.set(method, Math.max(peak.get(method) ?? 0, open.get(method) ?? 0));
    res.on('close', () => open.set(method, (open.get(method) ?? 1) - 1));
    const action = current({ method, url }, n);
    const entry = { method, url, status: 0 };
    log.push(entry);
    if (typeof action === 'object') {
      entry.status = action.status;
      res.writeHead(action.status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `scripted ${action.status}` }] }));
      return;
    }
    const upstream = http.request({ host, port: Number(port), path: url, method, headers: req.headers }, (up) => {
      if (action === 'drop-answer') {
        // The registry did it; the client never hears so.
        up.resume();
        up.on('end', () => res.destroy());
        return;
      }
      entry.status = up.statusCode ?? 0;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const listenPort = await freePort();
  await new Promise<void>((r) => server.listen(listenPort, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${listenPort}`,
    log,
    peak,
    setScript: (next) => {
      current = next;
      counts.clear();
    },
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
