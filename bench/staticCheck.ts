/**
 * The static check of a large image (at least 500 MB of gzip layers, built
 * here and pushed to a local registry), measured against baselines in the
 * same run: `docker pull` of the same image from the same registry, plain
 * decompression of the same layers, and the check of an image derived from
 * it (only its new layer is read).
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { memoryLayerCache } from '../server/checks/layerCache.js';
import { runStaticCheck } from '../server/checks/staticCheck.js';
import { RegistryClient } from '../server/registry/client.js';
import { parseReference } from '../server/registry/reference.js';
import { OPEN_POLICY } from '../server/systems/schema.js';
import {
  compress,
  diffIdOf,
  layerTar,
  mountBlob,
  pushBlob,
  pushBlobFile,
  pushManifest,
  pythonWithJupyterhub,
  sha256,
  singleuserScript,
} from '../test/support/images.js';
import { startRegistries } from '../test/support/registry.js';
import { percentile, type BenchRow } from './table.js';

const MB = 1_000_000;

/** Writes one gzip layer: many small files and a few large random ones. */
async function writeLayer(file: string, index: number, randomMB: number): Promise<void> {
  const pack = tar.pack();
  const out = pipeline(pack, createGzip({ level: 1 }), fs.createWriteStream(file));
  const mtime = new Date(0);
  const entry = (header: Parameters<typeof pack.entry>[0], body: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry(header, body, (err) => (err ? reject(err) : resolve())));
  for (let i = 0; i < 4000; i++) {
    await entry(
      { name: `opt/pkg${index}/lib/python3.11/site-packages/mod${i % 200}/file${i}.py`, mode: 0o644, mtime },
      Buffer.from(`# module ${i}\n`.repeat(20)),
    );
  }
  const chunk = 4 * 1024 * 1024;
  const big = pack.entry({ name: `opt/pkg${index}/data.bin`, size: randomMB * MB, mode: 0o644, mtime });
  let left = randomMB * MB;
  while (left > 0) {
    const part = randomBytes(Math.min(chunk, left));
    left -= part.length;
    if (!big.write(part)) await new Promise<void>((r) => big.once('drain', () => r()));
  }
  const finished = new Promise<void>((r) => big.once('finish', () => r()));
  big.end(Buffer.alloc(0));
  await finished;
  pack.finalize();
  await out;
}

/** Peak RSS of a child process, read from /proc while it runs (VmHWM is the high-water mark). */
function runMeasured(
  command: string,
  args: string[],
  stderr: 'inherit' | 'ignore' = 'inherit',
): Promise<{ ms: number; peakBytes: number; code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', stderr] });
    let stdout = '';
    let peak = 0;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const poll = setInterval(() => {
      try {
        const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
        peak = Math.max(peak, kb * 1024);
      } catch {
        // exited between polls
      }
    }, 20);
    child.on('exit', (code) => {
      clearInterval(poll);
      resolve({ ms: performance.now() - started, peakBytes: peak, code, stdout });
    });
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/** Runs the section; returns its rows. */
export async function benchStaticCheck(options: { layerCount?: number; randomMBPerLayer?: number } = {}): Promise<BenchRow[]> {
  const layerCount = options.layerCount ?? 5;
  const randomMB = options.randomMBPerLayer ?? 104;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-bench-'));
  const registries = await startRegistries();
  try {
    console.error(`bench: writing ${layerCount} layers of ~${randomMB} MB (gzip)…`);
    const files: string[] = [];
    for (let i = 0; i < layerCount; i++) {
      const file = path.join(dir, `layer${i}.tar.gz`);
      await writeLayer(file, i, randomMB);
      files.push(file);
    }
    const base = [pythonWithJupyterhub(), { '/usr/local/bin/jupyterhub-singleuser': singleuserScript('/usr/bin/python3') }];
    const registry = registries.open;
    const layers: Array<{ mediaType: string; digest: string; size: number }> = [];
    // rootfs.diff_ids must be right for `docker pull` to accept the image.
    const diffIds = new Map<string, string>();
    for (const files0 of base) {
      const raw = await layerTar(files0);
      const blob = compress(raw, 'gzip');
      const digest = await pushBlob(registry, 'bench/large', blob);
      diffIds.set(digest, sha256(raw));
      layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: blob.length });
    }
    for (const file of files) {
      const pushed = await pushBlobFile(registry, 'bench/large', file);
      layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...pushed });
    }
    const totalBytes = layers.reduce((s, l) => s + l.size, 0);
    for (const [i, file] of files.entries()) diffIds.set(layers[base.length + i]?.digest ?? '', await diffIdOf(file));
    const pushManifestFor = async (repo: string, layerList: typeof layers) => {
      const config = Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'] },
          rootfs: { type: 'layers', diff_ids: layerList.map((l) => diffIds.get(l.digest)) },
        }),
      );
      const configDigest = await pushBlob(registry, repo, config);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
          layers: layerList,
        }),
      );
      await pushManifest(registry, repo, '1', 'application/vnd.oci.image.manifest.v1+json', manifest);
    };
    await pushManifestFor('bench/large', layers);
    const extraRaw = await layerTar({ '/home/jovyan/analysis.ipynb': '{"cells": []}' });
    const extra = compress(extraRaw, 'gzip');
    const extraDigest = await pushBlob(registry, 'bench/derived', extra);
    diffIds.set(extraDigest, sha256(extraRaw));
    // The large image's layers are mounted into the derived image's repository, not uploaded again.
    for (const l of layers) await mountBlob(registry, 'bench/large', 'bench/derived', l.digest);
    await pushManifestFor('bench/derived', [
      ...layers,
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: extraDigest, size: extra.length },
    ]);
    console.error(`bench: image of ${(totalBytes / MB).toFixed(0)} MB pushed`);
    // The layers just written and pushed are a gigabyte of dirty pages; written back while the
    // timings run, they would slow down whichever measurement they fall on.
    execFileSync('sync');

    // Baseline: decompressing the same layers with gzip, nothing else (median of 3, like the check).
    const gunzipOnce = () =>
      timed(async () => {
        for (const file of files) {
          await new Promise<void>((resolve, reject) => {
            const child = spawn('sh', ['-c', `gzip -dc "${file}" > /dev/null`], { stdio: 'inherit' });
            child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`gzip exit ${code}`))));
          });
        }
      });
    const gunzipMs = percentile([await gunzipOnce(), await gunzipOnce(), await gunzipOnce()], 0.5);

    // The check, in its own process, as admins run it: wall time (median of 3) and peak memory.
    const cli = path.resolve('dist/server/cli.js');
    const checkOnce = async () => {
      const run = await runMeasured(process.execPath, [cli, 'check', `${registry}/bench/large:1`, '--allow-registry', registry, '--json']);
      const report = JSON.parse(run.stdout) as { verdict: string };
      if (report.verdict !== 'pass') throw new Error(`large image check: ${run.stdout}`);
      return run;
    };
    const runs = [await checkOnce(), await checkOnce(), await checkOnce()];
    const measured = {
      ms: percentile(
        runs.map((r) => r.ms),
        0.5,
      ),
      peakBytes: Math.max(...runs.map((r) => r.peakBytes)),
    };

    // Baseline: the Docker engine pulling the same image from the same registry (last: its
    // clean-up afterwards would slow down whatever runs next).
    const pullRef = `${registry}/bench/large:1`;
    const docker = (args: string[]) => runMeasured('docker', args);
    // Not there yet, normally; a leftover from an interrupted run would make the pull free.
    await runMeasured('docker', ['rmi', '-f', pullRef], 'ignore');
    const pull = await docker(['pull', '-q', pullRef]);
    if (pull.code !== 0)
      throw new Error(`docker pull ${pullRef} failed (is dockerd running? DOCKER_HOST=${process.env.DOCKER_HOST ?? ''})`);
    await docker(['rmi', '-f', pullRef]);

    // Derived image after the large one, sharing the layer cache (as the service does).
    const client = new RegistryClient({ trustedHosts: [registry] });
    const cache = memoryLayerCache();
    const check = (repo: string) =>
      runStaticCheck(
        { registry: client, layers: cache },
        { reference: parseReference(`${registry}/${repo}:1`), platform: 'linux/amd64', policy: OPEN_POLICY },
      );
    let first = 0;
    const firstMs = await timed(async () => {
      first = (await check('bench/large')).layers.fromCache;
    });
    let derivedLayers = { total: 0, fromCache: 0 };
    const derivedMs = await timed(async () => {
      derivedLayers = (await check('bench/derived')).layers;
    });
    if (first !== 0 || derivedLayers.fromCache !== derivedLayers.total - 1) throw new Error('layer cache not used as expected');

    return [
      {
        name: 'static check, large image: wall time / gzip -dc of the same layers',
        value: measured.ms,
        unit: 'ms',
        baseline: gunzipMs,
        ratio: measured.ms / gunzipMs,
        target: '<= 1.5',
        ok: measured.ms / gunzipMs <= 1.5,
        note: `${(totalBytes / MB).toFixed(0)} MB of gzip layers`,
      },
      {
        name: 'static check, large image: wall time / docker pull of the same image from the same registry',
        value: measured.ms,
        unit: 'ms',
        baseline: pull.ms,
        ratio: measured.ms / pull.ms,
        target: '<= 0.5',
        ok: measured.ms / pull.ms <= 0.5,
      },
      {
        name: 'static check, large image: peak memory (RSS) of the check process',
        value: measured.peakBytes / MB,
        unit: 'MB',
        baseline: 200,
        ratio: measured.peakBytes / MB / 200,
        target: '<= 200 MB',
        ok: measured.peakBytes <= 200 * MB,
      },
      {
        name: 'derived image (large + 1 small layer) / first check of the large image',
        value: derivedMs,
        unit: 'ms',
        baseline: firstMs,
        ratio: derivedMs / firstMs,
        target: '<= 0.1',
        ok: derivedMs / firstMs <= 0.1,
        note: `${derivedLayers.fromCache} of ${derivedLayers.total} layers from the cache`,
      },
    ];
  } finally {
    await registries.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
