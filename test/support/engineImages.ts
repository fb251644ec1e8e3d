/**
 * Images the engine builds for a test (classic builder, no network) from
 * the Debian jupyterhub image, and the same images pushed to a test
 * registry layer by layer (`docker save`, the Debian layer taken from its
 * cached file), so that a check reads exactly what `docker run` starts.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { diffIdOf, pushImage, type LayerFile } from './images.js';
import { DEBIAN_BASE } from './serviceImage.js';

/** The cached Debian jupyterhub layer (.ci/debian-image). */
export function debianLayer(): string {
  const layer = process.env.TEST_DEBIAN_JUPYTERHUB_LAYER;
  if (!layer || !fs.existsSync(layer))
    throw new Error('TEST_DEBIAN_JUPYTERHUB_LAYER is not set: run the tests through .ci/run (.ci/debian-image builds the layer)');
  return layer;
}

/** The Debian jupyterhub image in the engine, imported from its layer once (shared with other tests: never removed). */
export function debianBase(): string {
  try {
    execFileSync('docker', ['image', 'inspect', DEBIAN_BASE], { stdio: 'ignore' });
  } catch {
    execFileSync('docker', ['import', debianLayer(), DEBIAN_BASE], { stdio: 'ignore', timeout: 300_000 });
  }
  return DEBIAN_BASE;
}

/** Builds `dockerfile` with `files` as its context, tagged `tag`, without a network. */
export function buildImage(tag: string, dockerfile: string, files: Record<string, string | Buffer> = {}): void {
  const context = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-inv-build-'));
  try {
    fs.writeFileSync(path.join(context, 'Dockerfile'), dockerfile);
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(context, name)), { recursive: true });
      fs.writeFileSync(path.join(context, name), content);
    }
    execFileSync('docker', ['build', '-q', '--network', 'none', '-t', tag, context], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 300_000,
    });
  } finally {
    fs.rmSync(context, { recursive: true, force: true });
  }
}

/** Runs `command` in `image` without a network; its standard output. */
export function runIn(image: string, command: string[], entrypoint?: string): string {
  return execFileSync(
    'docker',
    ['run', '--rm', '--network', 'none', ...(entrypoint ? ['--entrypoint', entrypoint] : []), image, ...command],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
  );
}

interface SavedManifest {
  Config: string;
  Layers: string[];
}

/**
 * Pushes engine image `image` to `registry` as `repo:tag` (gzip layers, its
 * Env and User), the Debian layer from its cached file; the manifest digest.
 */
export async function pushEngineImage(registry: string, repo: string, tag: string, image: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-inv-save-'));
  try {
    execFileSync('sh', ['-c', `docker save "$1" | tar -x -C "$2"`, 'sh', image, dir], { timeout: 300_000 });
    const [saved] = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as SavedManifest[];
    if (!saved) throw new Error(`docker save ${image}: no manifest`);
    const config = JSON.parse(fs.readFileSync(path.join(dir, saved.Config), 'utf8')) as {
      config?: { Env?: string[]; User?: string };
      rootfs: { diff_ids: string[] };
    };
    const base = debianLayer();
    const baseDiffId = await diffIdOf(base);
    const layers: LayerFile[] = [];
    for (const [i, layer] of saved.Layers.entries()) {
      if (config.rootfs.diff_ids[i] === baseDiffId) {
        layers.push({ path: base });
        continue;
      }
      const file = path.join(dir, `layer${i}.tar.gz`);
      await pipeline(fs.createReadStream(path.join(dir, layer)), createGzip({ level: 1 }), fs.createWriteStream(file));
      layers.push({ path: file });
    }
    const pushed = await pushImage(registry, repo, tag, { layers, env: config.config?.Env, user: config.config?.User ?? '' });
    return pushed.digest;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A name no other test or engineer uses. */
export function uniqueTag(name: string): string {
  return `ci-inventory/${name}:${createHash('sha256').update(`${process.pid}-${Date.now()}-${Math.random()}`).digest('hex').slice(0, 12)}`;
}
