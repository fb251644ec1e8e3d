/**
 * The suite's registry for images built on the Debian base image with
 * JupyterHub: one for the whole run (test/globalSetup.ts starts it), so that
 * the engine pushes the base's 600 MB layer to it once, not once a file.
 *
 * Why: a file's own registry is on a new port, and the engine knows where a
 * layer already is only per registry host (it mounts a blob from another
 * repository of the same host, never from another host, and an image it
 * pulled but whose layers it already had registers no source). So the first
 * push of every build on the base compressed and uploaded the whole layer
 * again, about 30 s a file. Here the first file that asks pushes it once
 * (`warm`), and every later build push mounts it from that repository.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { inject } from 'vitest';
import { mountBlob, pushImage } from './images.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** host:port of the suite's build registry, and its folder for this run's notes; empty without docker-registry. */
    buildRegistry: { host: string; dir: string };
  }
}

const LAYER = process.env.TEST_DEBIAN_JUPYTERHUB_LAYER;
const WARM_REPOSITORY = 'warm/debian';

export interface DebianBuildBase {
  /** host:port of the suite's build registry: trust it, allow it on the system, push builds to a folder of the file's own. */
  registry: string;
  /** The base image, `registry/repository:1`. */
  image: string;
  digest: string;
}

/**
 * Pushes the Debian base image with JupyterHub as `repository:1` to the
 * suite's build registry (its layer mounted, not uploaded again), with the
 * image config `config` (the user it runs as), and makes sure that the
 * engine has pushed the layer to that registry once.
 */
export async function debianBuildBase(repository: string, config: { user?: string } = {}): Promise<DebianBuildBase> {
  if (!LAYER || !fs.existsSync(LAYER))
    throw new Error('TEST_DEBIAN_JUPYTERHUB_LAYER is not set: run the tests through .ci/run (.ci/debian-image builds the image)');
  const { host, dir } = inject('buildRegistry');
  if (!host) throw new Error('The suite has no build registry (test/globalSetup.ts found no docker-registry): run .ci/setup');
  await warm(host, dir, LAYER);
  const { digest } = await pushImage(host, repository, '1', { layers: [{ path: LAYER }], ...config }, { mountFrom: WARM_REPOSITORY });
  return { registry: host, image: `${host}/${repository}:1`, digest };
}

/** Once a run: the engine pushes the base's layer to the registry (the only slow push), and keeps the image as its source. */
async function warm(host: string, dir: string, layer: string): Promise<void> {
  const done = path.join(dir, 'warm');
  if (fs.existsSync(done)) return;
  const source = `${host}/ci-source/debian`;
  const { digest, manifest } = await pushImage(host, 'ci-source/debian', '1', { layers: [{ path: layer }] });
  execFileSync('docker', ['pull', '-q', `${source}@${digest}`], { stdio: 'ignore' });
  execFileSync('docker', ['tag', `${source}@${digest}`, `${host}/${WARM_REPOSITORY}:1`], { stdio: 'ignore' });
  execFileSync('docker', ['push', '-q', `${host}/${WARM_REPOSITORY}:1`], { stdio: 'ignore' });
  // The test's own gzip of the layer, in the warm repository too: every base pushed later mounts it from there.
  const { layers } = JSON.parse(manifest.toString('utf8')) as { layers: Array<{ digest: string }> };
  for (const { digest: blob } of layers) await mountBlob(host, 'ci-source/debian', WARM_REPOSITORY, blob);
  fs.writeFileSync(done, '');
}
