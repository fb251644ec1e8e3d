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
import fs from 'node:fs';
import path from 'node:path';
import { inject } from 'vitest';
import { engineKnowsLayer } from './engineKnowsLayer.js';
import { pushImage } from './images.js';

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
  const done = path.join(dir, 'warm');
  if (!fs.existsSync(done)) {
    await engineKnowsLayer(host, WARM_REPOSITORY, LAYER);
    fs.writeFileSync(done, '');
  }
  const { digest } = await pushImage(host, repository, '1', { layers: [{ path: LAYER }], ...config }, { mountFrom: WARM_REPOSITORY });
  return { registry: host, image: `${host}/${repository}:1`, digest };
}
