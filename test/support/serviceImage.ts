/**
 * The service's container image, built from the repository's Dockerfile as an
 * admin would (`docker build`), on a base made here: no image can be pulled on
 * these machines. The base imitates node:20-bookworm-slim: Debian 12 (the
 * debootstrapped layer of .ci/debian-image) with this machine's Node.js 20,
 * npm and Node's headers (node-gyp builds better-sqlite3 against them where no
 * prebuilt binary can be fetched), and this machine's CA bundle and npm
 * settings, so that npm inside the build reaches the registry as npm here does.
 *
 * The base also carries this machine's npm cache, with better-sqlite3's binary
 * (compiled here by `npm ci`) filed as the prebuilt binary npm fetches from
 * GitHub on a site's machine: GitHub is out of reach here, and compiling SQLite
 * in the build took a minute and a half of the suite. The build still runs
 * the Dockerfile's every step; its npm finds the packages it would download.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');
export const DEBIAN_BASE = 'ci-deploy/debian:12';
export const NODE_BASE = 'ci-deploy/node:20';
export const SERVICE_IMAGE = 'ci-deploy/custom-images:test';

/** Runs a command; its output is returned, and thrown with the exit code when it fails. */
export function run(command: string, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    proc.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code}:\n${output.slice(-4000)}`));
    });
  });
}

async function imageExists(tag: string): Promise<boolean> {
  return run('docker', ['image', 'inspect', tag]).then(
    () => true,
    () => false,
  );
}

/** Which Node.js installation this machine runs: the binary, npm, the headers. */
function localNode(): { binary: string; npm: string; headers: string } {
  const binary = fs.realpathSync(process.execPath);
  const prefix = path.dirname(path.dirname(binary));
  const npm = path.join(prefix, 'lib/node_modules/npm');
  const headers = path.join(prefix, 'include/node');
  for (const p of [npm, headers]) if (!fs.existsSync(p)) throw new Error(`no ${p}: the test's Node.js base needs npm and Node's headers`);
  return { binary, npm, headers };
}

/**
 * This machine's npm cache in `dir`, with better-sqlite3's compiled binary where prebuild-install looks for
 * a downloaded prebuilt one before it asks GitHub (its own naming: prebuild-install/util.js).
 */
async function npmCache(dir: string): Promise<void> {
  const cache = (await run('npm', ['config', 'get', 'cache'])).trim();
  fs.mkdirSync(path.join(dir, '_prebuilds'), { recursive: true });
  if (fs.existsSync(path.join(cache, '_cacache'))) fs.cpSync(path.join(cache, '_cacache'), path.join(dir, '_cacache'), { recursive: true });
  const sqlite = path.join(ROOT, 'node_modules/better-sqlite3');
  if (!fs.existsSync(path.join(sqlite, 'build/Release/better_sqlite3.node'))) return;
  const require = createRequire(path.join(sqlite, 'package.json'));
  const prebuild = require('prebuild-install/util') as {
    getDownloadUrl(opts: object): string;
    cachedPrebuild(url: string): string;
  };
  const pkg = JSON.parse(fs.readFileSync(path.join(sqlite, 'package.json'), 'utf8')) as object;
  const url = prebuild.getDownloadUrl({
    pkg,
    runtime: 'node',
    abi: process.versions.modules,
    platform: process.platform,
    arch: process.arch,
    'tag-prefix': 'v',
  });
  const file = path.join(dir, '_prebuilds', path.basename(prebuild.cachedPrebuild(url)));
  await run('tar', ['-czf', file, '-C', sqlite, 'build/Release/better_sqlite3.node']);
}

/** node:20-bookworm-slim's stand-in, made from files of this machine. */
async function buildNodeBase(): Promise<void> {
  if (!(await imageExists(DEBIAN_BASE))) {
    const layer = process.env.TEST_DEBIAN_JUPYTERHUB_LAYER;
    if (!layer || !fs.existsSync(layer))
      throw new Error('TEST_DEBIAN_JUPYTERHUB_LAYER is not set: run the tests through .ci/run (.ci/debian-image builds the layer)');
    await run('docker', ['import', layer, DEBIAN_BASE], { timeoutMs: 300_000 });
  }
  const context = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-node-base-'));
  try {
    const node = localNode();
    fs.copyFileSync(node.binary, path.join(context, 'node'));
    fs.cpSync(node.npm, path.join(context, 'npm'), { recursive: true, verbatimSymlinks: true });
    fs.cpSync(node.headers, path.join(context, 'include'), { recursive: true });
    const caBundle = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
    fs.copyFileSync(caBundle, path.join(context, 'ca-certificates.crt'));
    await npmCache(path.join(context, 'npm-cache'));
    fs.writeFileSync(
      path.join(context, 'Dockerfile'),
      [
        `FROM ${DEBIAN_BASE}`,
        'COPY node /usr/local/bin/node',
        'COPY npm /usr/local/lib/node_modules/npm',
        'COPY include /usr/local/include/node',
        'COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt',
        'COPY npm-cache /root/.npm',
        'RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx',
        'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt npm_config_cafile=/etc/ssl/certs/ca-certificates.crt npm_config_nodedir=/usr/local',
        'CMD ["node"]',
        '',
      ].join('\n'),
    );
    await run('docker', ['build', '--quiet', '--network', 'none', '-t', NODE_BASE, context], { timeoutMs: 300_000 });
  } finally {
    fs.rmSync(context, { recursive: true, force: true });
  }
}

/**
 * Builds the service's image from the Dockerfile on the local base (Docker's layer cache makes a
 * second build on the same machine quick); returns its tag and the build's output.
 */
export async function buildServiceImage(): Promise<{ tag: string; output: string }> {
  await buildNodeBase();
  // The build's RUN steps reach Debian's and npm's registries through the host's network (no bridge here).
  const output = await run('docker', ['build', '--network', 'host', '--build-arg', `BASE_IMAGE=${NODE_BASE}`, '-t', SERVICE_IMAGE, '.'], {
    cwd: ROOT,
    timeoutMs: 900_000,
  });
  return { tag: SERVICE_IMAGE, output };
}
