/**
 * The static check against real registries (docker-registry on 127.0.0.1:
 * open, htpasswd and token auth) with images the test builds and pushes.
 */
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryLayerCache, type LayerIndexCache } from '../../server/checks/layerCache.js';
import { runStaticCheck, type StaticCheckResult } from '../../server/checks/staticCheck.js';
import type { UnpackLimits } from '../../server/inspect/layerIndex.js';
import { RegistryClient, type RegistryCredentials } from '../../server/registry/client.js';
import { RegistryTransport } from '../../server/registry/transport.js';
import { parseReference } from '../../server/registry/reference.js';
import { OPEN_POLICY, type ImagePolicy } from '../../server/systems/schema.js';
import { passingImage, pushImage, pushIndex, pythonWithJupyterhub, singleuserScript, type ImageSpec } from '../support/images.js';
import { faultyProxy, freePort, PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';

let registries: TestRegistries;

const usrLocal = passingImage();

beforeAll(async () => {
  registries = await startRegistries();
  const r = registries.open;
  await pushImage(r, 'pass/usr-local', '1', usrLocal);
  await pushImage(r, 'private/usr-local', '1', usrLocal);
  await pushImage(r, 'public/usr-local', '1', usrLocal);
  await pushImage(r, 'pass/conda', '1', {
    env: ['PATH=/opt/conda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    user: 'jovyan',
    layers: [
      { files: { '/etc/passwd': 'root:x:0:0::/root:/bin/sh\njovyan:x:1000:100::/home/jovyan:/bin/bash\n' }, compression: 'none' },
      { files: pythonWithJupyterhub({ prefix: '/opt/conda', python: '3.12', jupyterhub: '4.1.5' }), compression: 'zstd' },
      { files: { '/opt/conda/bin/jupyterhub-singleuser': singleuserScript('/opt/conda/bin/python3.12') }, compression: 'zstd' },
    ],
  });
  await pushImage(r, 'pass/symlinks', '1', {
    docker: true,
    layers: [
      { files: pythonWithJupyterhub() },
      {
        files: {
          // absolute link -> symlinked directory (relative) -> relative link -> script using env
          '/usr/local/bin/jupyterhub-singleuser': { type: 'symlink', target: '/opt/env/bin/jupyterhub-singleuser' },
          '/opt/env': { type: 'symlink', target: 'versions/1.0' },
          '/opt/versions/1.0/bin/jupyterhub-singleuser': { type: 'symlink', target: '../libexec/jhs' },
          '/opt/versions/1.0/libexec/jhs': singleuserScript('/usr/bin/env python3'),
        },
      },
    ],
  });
  const arm: ImageSpec = { ...usrLocal, platform: 'linux/arm64/v8' };
  await pushIndex(r, 'pass/multiarch', '1', [arm, usrLocal]);
  await pushIndex(r, 'fail/arm-only', '1', [arm]);
  await pushImage(r, 'fail/none', '1', { layers: [{ files: pythonWithJupyterhub() }] });
  await pushImage(r, 'fail/whiteout', '1', {
    layers: [...usrLocal.layers, { files: { '/usr/local/bin/.wh.jupyterhub-singleuser': '' } }],
  });
  await pushImage(r, 'fail/opaque', '1', {
    env: ['PATH=/opt/conda/bin:/usr/bin:/bin'],
    layers: [
      { files: pythonWithJupyterhub({ prefix: '/opt/conda' }) },
      { files: { '/opt/conda/bin/jupyterhub-singleuser': singleuserScript('/opt/conda/bin/python3') } },
      { files: { '/opt/conda/bin/.wh..wh..opq': '', '/opt/conda/bin/python3': { content: '\u007fELF', mode: 0o755 } } },
    ],
  });
  await pushImage(r, 'fail/not-executable', '1', {
    layers: [
      { files: pythonWithJupyterhub() },
      { files: { '/usr/local/bin/jupyterhub-singleuser': { ...singleuserScript('/usr/bin/python3'), mode: 0o644 } } },
    ],
  });
  await pushImage(r, 'fail/no-interpreter', '1', {
    layers: [
      { files: pythonWithJupyterhub() },
      { files: { '/usr/local/bin/jupyterhub-singleuser': singleuserScript('/opt/conda/bin/python3') } },
    ],
  });
  await pushImage(r, 'fail/no-uid-1000', '1', {
    layers: [
      { files: pythonWithJupyterhub({ users: 'root:x:0:0::/root:/bin/sh\nada:x:1001:1001::/home/ada:/bin/sh\n' }) },
      usrLocal.layers[1]!,
    ],
  });
}, 120_000);

afterAll(async () => {
  await registries?.stop();
});

function client(options: ConstructorParameters<typeof RegistryClient>[0] = {}) {
  return new RegistryClient({ trustedHosts: registries.trusted, attempts: 2, maxRetryWaitMs: 100, ...options });
}

async function check(
  image: string,
  options: {
    policy?: Partial<ImagePolicy>;
    credentials?: RegistryCredentials;
    registry?: RegistryClient;
    layers?: LayerIndexCache;
    platform?: string;
  } = {},
): Promise<StaticCheckResult> {
  return runStaticCheck(
    { registry: options.registry ?? client(), layers: options.layers ?? memoryLayerCache() },
    {
      reference: parseReference(image),
      platform: options.platform ?? 'linux/amd64',
      policy: { ...OPEN_POLICY, ...options.policy },
      credentials: options.credentials,
      hubVersion: '3.0.0',
    },
  );
}

const codes = (result: StaticCheckResult, level = 'error') => result.findings.filter((f) => f.level === level).map((f) => f.code);

describe('images that pass', () => {
  it('finds singleuser in /usr/local/bin, with its interpreter, Python, pip, users and version', async () => {
    const result = await check(`${registries.open}/pass/usr-local:1`);
    expect(result.verdict).toBe('pass');
    expect(result.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.facts?.singleuser).toEqual({
      path: '/usr/local/bin/jupyterhub-singleuser',
      resolvedPath: '/usr/local/bin/jupyterhub-singleuser',
      version: '3.0.0',
    });
    expect(result.facts?.interpreter?.resolvedPath).toBe('/usr/bin/python3.11');
    expect(result.facts?.python?.version).toBe('3.11');
    expect(result.facts?.pip?.path).toBe('/usr/bin/pip3');
    expect(result.facts?.users).toContainEqual({ name: 'jovyan', uid: 1000, home: '/home/jovyan' });
  });

  it("finds singleuser in /opt/conda/bin through the config's PATH (zstd and plain tar layers)", async () => {
    const result = await check(`${registries.open}/pass/conda:1`);
    expect(result.verdict).toBe('pass');
    expect(result.facts?.singleuser?.path).toBe('/opt/conda/bin/jupyterhub-singleuser');
    expect(result.facts?.python?.version).toBe('3.12');
    // A different major version than the hub's (3.0.0) is a warning, not a failure.
    expect(codes(result, 'warning')).toContain('jupyterhub.version');
    expect(result.findings.find((f) => f.code === 'jupyterhub.version')?.message).toMatch(/4\.1\.5.*3\.0\.0/);
  });

  it('follows a chain of absolute and relative symlinks through a symlinked directory, and env python3', async () => {
    const result = await check(`${registries.open}/pass/symlinks:1`);
    expect(result.verdict).toBe('pass');
    expect(result.facts?.singleuser?.resolvedPath).toBe('/opt/versions/1.0/libexec/jhs');
    expect(result.facts?.interpreter?.resolvedPath).toBe('/usr/bin/python3.11');
  });

  it('picks linux/amd64 from a multi-arch index', async () => {
    const result = await check(`${registries.open}/pass/multiarch:1`);
    expect(result.verdict).toBe('pass');
    expect(result.platform).toBe('linux/amd64');
    expect(result.manifestDigest).not.toBe(result.digest);
  });
});

describe('images that fail, each with its finding', () => {
  it.each([
    ['fail/none', 'singleuser.missing', /not on the image's PATH/],
    ['fail/whiteout', 'singleuser.missing', /not on the image's PATH/],
    ['fail/opaque', 'singleuser.missing', /not on the image's PATH/],
    ['fail/not-executable', 'singleuser.not_executable', /not executable \(mode 644\)/],
    ['fail/no-interpreter', 'interpreter.missing', /#!\/opt\/conda\/bin\/python3, but .* does not exist/],
    ['fail/arm-only', 'platform.missing', /no image for linux\/amd64; it offers linux\/arm64/],
  ])('%s: %s', async (repo, code, message) => {
    const result = await check(`${registries.open}/${repo}:1`);
    expect(result.verdict).toBe('fail');
    expect(codes(result)).toContain(code);
    expect(result.findings.find((f) => f.code === code)?.message).toMatch(message);
  });

  it('fails an image without a uid 1000 user when the policy requires one, and passes it otherwise', async () => {
    const strict = await check(`${registries.open}/fail/no-uid-1000:1`, { policy: { requireUser: true } });
    expect(strict.verdict).toBe('fail');
    expect(codes(strict)).toEqual(['user.uid_missing']);
    expect(strict.findings.find((f) => f.code === 'user.uid_missing')?.message).toMatch(/ada=1001/);
    expect((await check(`${registries.open}/fail/no-uid-1000:1`)).verdict).toBe('pass');
  });

  it('fails a Python outside the policy range', async () => {
    const result = await check(`${registries.open}/pass/usr-local:1`, { policy: { python: { min: '3.12' } } });
    expect(result.verdict).toBe('fail');
    expect(result.findings.find((f) => f.code === 'python.version')?.message).toMatch(
      /Python 3\.11; this system needs Python 3\.12 or newer/,
    );
  });
});

describe('checks that cannot be made, each with its message', () => {
  it('registry down', async () => {
    const port = await freePort();
    const result = await check(`127.0.0.1:${port}/pass/usr-local:1`, { registry: client({ trustedHosts: [`127.0.0.1:${port}`] }) });
    expect(result.verdict).toBe('error');
    expect(result.findings[0]).toMatchObject({
      code: 'registry.unreachable',
      message: expect.stringMatching(/cannot be reached: the connection was refused/),
    });
  });

  it('wrong password, with Basic and with token auth', async () => {
    for (const registry of [registries.basic, registries.token]) {
      const result = await check(`${registry}/private/usr-local:1`, { credentials: { username: USER, password: 'wrong' } });
      expect(result.verdict).toBe('error');
      expect(result.findings[0]).toMatchObject({
        code: 'registry.unauthorized',
        message: expect.stringMatching(/refused the username and password/),
      });
    }
  });

  it('private repository without credentials, with Basic and with token auth', async () => {
    for (const registry of [registries.basic, registries.token]) {
      const result = await check(`${registry}/private/usr-local:1`);
      expect(result.verdict).toBe('error');
      expect(result.findings[0]?.code).toBe('registry.denied');
      expect(result.findings[0]?.message).toMatch(/add the registry's username and password or token/i);
    }
  });

  it('the right credentials pass, with Basic and with token auth; an anonymous token reads a public repository', async () => {
    for (const registry of [registries.basic, registries.token]) {
      expect((await check(`${registry}/private/usr-local:1`, { credentials: { username: USER, password: PASSWORD } })).verdict).toBe(
        'pass',
      );
    }
    expect((await check(`${registries.token}/public/usr-local:1`)).verdict).toBe('pass');
  });

  it('caches bearer tokens until they expire', async () => {
    const registry = client();
    const before = registries.tokenRequests.length;
    await check(`${registries.token}/private/usr-local:1`, { registry, credentials: { username: USER, password: PASSWORD } });
    await check(`${registries.token}/private/usr-local:1`, { registry, credentials: { username: USER, password: PASSWORD } });
    expect(registries.tokenRequests.length - before).toBe(1);
  });

  it('unknown tag', async () => {
    const result = await check(`${registries.open}/pass/usr-local:nope`);
    expect(result.verdict).toBe('error');
    expect(result.findings[0]).toMatchObject({ code: 'registry.not_found', message: expect.stringMatching(/has no tag "nope"/) });
  });

  it('a manifest whose digest does not match', async () => {
    // Something between us and the registry alters the manifest but keeps its digest header.
    const proxy = http.createServer((req, res) => {
      const upstream = http.request(
        { host: '127.0.0.1', port: Number(registries.open.split(':')[1]), path: req.url, method: req.method, headers: req.headers },
        (up) => {
          const chunks: Buffer[] = [];
          up.on('data', (c: Buffer) => chunks.push(c));
          up.on('end', () => {
            let body = Buffer.concat(chunks);
            if (req.url?.includes('/manifests/')) body = Buffer.concat([body, Buffer.from(' ')]);
            res.writeHead(up.statusCode ?? 500, { ...up.headers, 'content-length': String(body.length) });
            res.end(body);
          });
        },
      );
      req.pipe(upstream);
    });
    const port = await freePort();
    await new Promise<void>((r) => proxy.listen(port, '127.0.0.1', r));
    try {
      const result = await check(`127.0.0.1:${port}/pass/usr-local:1`, { registry: client({ trustedHosts: [`127.0.0.1:${port}`] }) });
      expect(result.verdict).toBe('error');
      expect(result.findings[0]).toMatchObject({
        code: 'registry.digest_mismatch',
        message: expect.stringMatching(/does not match its digest/),
      });
    } finally {
      proxy.close();
    }
  });

  it('a layer over the size limit', async () => {
    const result = await check(`${registries.open}/pass/usr-local:1`, { registry: client({ maxLayerBytes: 100 }) });
    expect(result.verdict).toBe('error');
    expect(result.findings[0]).toMatchObject({
      code: 'registry.too_large',
      message: expect.stringMatching(/layers over 100 bytes are not checked/),
    });
  });

  it('a registry on a private address that no admin allowed', async () => {
    const untrusted = new RegistryClient({ attempts: 1 });
    for (const host of [registries.open, `localhost:${registries.open.split(':')[1]}`]) {
      const result = await check(`${host}/pass/usr-local:1`, { registry: untrusted });
      expect(result.verdict).toBe('error');
      expect(result.findings[0]).toMatchObject({
        code: 'registry.refused_address',
        message: expect.stringMatching(/private or internal network address/),
      });
    }
  });

  it('a layer whose manifest gives it no size, which would switch the size limits off', async () => {
    for (const size of [0, -1, 'large', null]) {
      const server = http.createServer((req, res) => {
        const upstream = http.request(
          { host: '127.0.0.1', port: Number(registries.open.split(':')[1]), path: req.url, method: req.method, headers: req.headers },
          (up) => {
            if (!req.url?.includes('/manifests/') || req.method !== 'GET') {
              res.writeHead(up.statusCode ?? 502, up.headers);
              up.pipe(res);
              return;
            }
            const chunks: Buffer[] = [];
            up.on('data', (c: Buffer) => chunks.push(c));
            up.on('end', () => {
              const manifest = JSON.parse(Buffer.concat(chunks).toString()) as { layers: Array<{ size: unknown }> };
              manifest.layers[0]!.size = size;
              const body = Buffer.from(JSON.stringify(manifest));
              res.writeHead(200, { 'Content-Type': String(up.headers['content-type']), 'Content-Length': body.length }).end(body);
            });
          },
        );
        req.pipe(upstream);
      });
      const port = await freePort();
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
      try {
        const result = await check(`127.0.0.1:${port}/pass/usr-local:1`, { registry: client({ trustedHosts: [`127.0.0.1:${port}`] }) });
        expect(result.verdict).toBe('error');
        expect(result.findings[0]).toMatchObject({
          code: 'registry.protocol',
          message: expect.stringMatching(/gives a layer \(sha256:[0-9a-f]{12}\) no size/),
        });
      } finally {
        server.close();
      }
    }
  });

  it('reads only the start of an endless error answer', async () => {
    let sent = 0;
    const server = http.createServer((_req, res) => {
      // A "not found" whose JSON error body never ends.
      res.writeHead(404, { 'Content-Type': 'application/json' });
      // An answer that never ends: the check must not wait for it or keep it.
      const more = () => {
        if (res.destroyed) return;
        sent += 64 * 1024;
        if (res.write(Buffer.alloc(64 * 1024, 'x'))) setImmediate(more);
        else res.once('drain', more);
      };
      more();
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    try {
      const result = await check(`127.0.0.1:${port}/pass/usr-local:1`, {
        registry: client({ trustedHosts: [`127.0.0.1:${port}`], attempts: 1 }),
      });
      expect(result.verdict).toBe('error');
      expect(result.findings[0]).toMatchObject({ code: 'registry.not_found' });
      expect(sent).toBeLessThan(64 * 1024 * 1024);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('a layer that unpacks to more files or bytes than allowed, per layer and per image', async () => {
    const cases: Array<[Partial<UnpackLimits>, RegExp]> = [
      [{ layerEntries: 5 }, /A layer has more than 5 files/],
      [{ imageEntries: 8 }, /The image has more than 8 files/],
      // The layers' tars are 7680 and 2048 bytes.
      [{ layerBytes: 5_000 }, /A layer unpacks to more than 5000 bytes/],
      [{ imageBytes: 9_000 }, /The image unpacks to more than 9000 bytes/],
    ];
    for (const [limits, message] of cases) {
      const unpack = { layerEntries: 1_000_000, imageEntries: 1_000_000, layerBytes: 1e9, imageBytes: 1e9, ...limits };
      const result = await runStaticCheck(
        { registry: client(), layers: memoryLayerCache(), unpack },
        { reference: parseReference(`${registries.open}/pass/usr-local:1`), platform: 'linux/amd64', policy: OPEN_POLICY },
      );
      expect(result.verdict, JSON.stringify(limits)).toBe('error');
      expect(result.findings.find((f) => f.code === 'layer.too_large')?.message).toMatch(message);
    }
  });
});

describe('trusted registries', () => {
  it('are trusted on their own port only', async () => {
    const result = await check(`${registries.basic}/pass/usr-local:1`, { registry: client({ trustedHosts: [registries.open] }) });
    expect(result.findings[0]).toMatchObject({ code: 'registry.refused_address' });
    expect((await check(`${registries.open}/pass/usr-local:1`, { registry: client({ trustedHosts: [registries.open] }) })).verdict).toBe(
      'pass',
    );
  });

  it('may name a token realm of their own elsewhere on the private network', async () => {
    // The token registry's realm is another port of 127.0.0.1, which nobody trusted by name.
    const result = await check(`${registries.token}/private/usr-local:1`, {
      registry: client({ trustedHosts: [registries.token] }),
      credentials: { username: USER, password: PASSWORD },
    });
    expect(result.verdict).toBe('pass');
  });

  it('lend no trust to requests made for another registry (its realm or redirects)', async () => {
    // What an untrusted registry's session sends goes through a transport for public addresses only,
    // whatever it names: here the address of a registry the admin trusts.
    const policy = { allowPrivate: false };
    const transport = new RegistryTransport({
      policy,
      timeouts: { connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000 },
      attempts: 1,
      maxRetryWaitMs: 0,
    });
    await expect(transport.request(`http://${registries.open}/v2/`)).rejects.toMatchObject({ code: 'registry.refused_address' });
    await expect(transport.request(`http://localhost:${registries.open.split(':')[1]}/v2/`)).rejects.toMatchObject({
      code: 'registry.refused_address',
    });
  });

  it('decide what the Docker engine may pull from, as for the service itself', async () => {
    const guard = client({ trustedHosts: [registries.open] });
    await expect(guard.assertEngineMayPull(registries.open)).resolves.toBeUndefined();
    for (const registry of [
      registries.basic,
      `localhost:${registries.basic.split(':')[1]}`,
      '10.1.2.3:5000',
      '[::1]:5000',
      '169.254.169.254',
    ]) {
      await expect(guard.assertEngineMayPull(registry)).rejects.toMatchObject({ code: 'registry.refused_address' });
    }
  });
});

describe('a hostile registry', () => {
  it('never sends the password to a token realm on another host over plain http, nor to a redirect target', async () => {
    const seen: Array<{ path: string; authorization: string | undefined }> = [];
    const realm = http.createServer((req, res) => {
      seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"token":"t","expires_in":60}');
    });
    const realmPort = await freePort();
    await new Promise<void>((r) => realm.listen(realmPort, '127.0.0.1', r));
    const registry = http.createServer((req, res) => {
      if (req.headers.authorization === 'Bearer t' && req.url?.includes('/manifests/')) {
        // Send the client elsewhere, where the Authorization header must not follow.
        res.writeHead(307, { Location: `http://localhost:${realmPort}/elsewhere` }).end();
        return;
      }
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://localhost:${realmPort}/token",service="evil"` }).end();
    });
    const registryPort = await freePort();
    await new Promise<void>((r) => registry.listen(registryPort, '127.0.0.1', r));
    try {
      const result = await check(`127.0.0.1:${registryPort}/lab/env:1`, {
        registry: client({ trustedHosts: [`127.0.0.1:${registryPort}`] }),
        credentials: { username: USER, password: PASSWORD },
      });
      expect(result.verdict).toBe('error');
      const tokenRequest = seen.find((r) => r.path.startsWith('/token'));
      expect(tokenRequest).toBeDefined();
      expect(tokenRequest?.authorization).toBeUndefined();
      const redirected = seen.find((r) => r.path === '/elsewhere');
      expect(redirected?.authorization).toBeUndefined();
    } finally {
      realm.close();
      registry.close();
    }
  });
});

describe('layer reuse', () => {
  it('reads only the new layers of an image that shares its base with one already checked', async () => {
    const layers = memoryLayerCache();
    const first = await check(`${registries.open}/pass/usr-local:1`, { layers });
    expect(first.layers).toMatchObject({ total: 2, fromCache: 0 });
    const derived = await pushImage(registries.open, 'pass/derived', '1', {
      layers: [...usrLocal.layers, { files: { '/home/jovyan/notebook.ipynb': '{}' } }],
    });
    const second = await check(`${registries.open}/pass/derived:1`, { layers });
    expect(second.digest).toBe(derived.digest);
    expect(second.layers).toMatchObject({ total: 3, fromCache: 2 });
    expect(second.verdict).toBe('pass');
  });
});

describe('the digest of a tag, for launches', () => {
  it('asks the registry once for launches that arrive together, and again for a check or after its time', async () => {
    const proxy = await faultyProxy(registries.open);
    try {
      let now = 0;
      const client = new RegistryClient({ trustedHosts: [proxy.host], now: () => now });
      const reference = parseReference(`${proxy.host}/pass/usr-local:1`);
      const heads = () => proxy.requests.filter((r) => r.startsWith('HEAD ')).length;
      const digests = await Promise.all(Array.from({ length: 20 }, () => client.session(reference, undefined).headDigest()));
      expect(new Set(digests).size).toBe(1);
      expect(heads()).toBe(1);
      await client.session(reference, undefined).headDigest();
      expect(heads()).toBe(1);
      await client.session(reference, undefined).headDigest({ fresh: true });
      expect(heads()).toBe(2);
      now += client.digests.ttlMs + 1;
      await client.session(reference, undefined).headDigest();
      expect(heads()).toBe(3);
    } finally {
      await proxy.stop();
    }
  });
});

describe('custom-images check (CLI)', () => {
  const cli = (args: string[], input?: string) =>
    spawnSync(process.execPath, [path.resolve('dist/server/cli.js'), ...args], {
      input,
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    });

  it('prints JSON and exits 0 for a passing image', () => {
    const run = cli(['check', `${registries.open}/pass/conda:1`, '--allow-registry', registries.open, '--json']);
    expect(run.status).toBe(0);
    const report = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      reference: `${registries.open}/pass/conda:1`,
      platform: 'linux/amd64',
      verdict: 'pass',
      singleuser: { path: '/opt/conda/bin/jupyterhub-singleuser', version: '4.1.5' },
      python: { version: '3.12' },
    });
    expect(report.users).toContainEqual({ name: 'jovyan', uid: 1000 });
  });

  it('exits 1 for a failing image and 2 when the check cannot be made; reads the password from stdin', () => {
    expect(cli(['check', `${registries.open}/fail/none:1`, '--allow-registry', registries.open]).status).toBe(1);
    const wrong = cli(
      ['check', `${registries.basic}/private/usr-local:1`, '--allow-registry', registries.basic, '--username', USER, '--password-stdin'],
      'wrong\n',
    );
    expect(wrong.status).toBe(2);
    expect(wrong.stdout).toContain('registry.unauthorized');
    expect(wrong.stdout + wrong.stderr).not.toContain('wrong\n');
    const right = cli(
      ['check', `${registries.basic}/private/usr-local:1`, '--allow-registry', registries.basic, '--username', USER, '--password-stdin'],
      `${PASSWORD}\n`,
    );
    expect(right.status).toBe(0);
    expect(right.stdout + right.stderr).not.toContain(PASSWORD);
  });

  it('custom-images reference explains a reference or why it is invalid', () => {
    const ok = cli(['reference', 'jupyter/datascience-notebook', '--json']);
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      registry: 'docker.io',
      repository: 'jupyter/datascience-notebook',
      tag: 'latest',
      normalized: 'docker.io/jupyter/datascience-notebook:latest',
    });
    const bad = cli(['reference', 'Jupyter/Notebook']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('Repository names are lowercase');
  });
});
