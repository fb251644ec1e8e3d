/**
 * Has the engine push a gzip'd layer to a registry once, so that it knows
 * the layer is there: the engine finds where a layer already is only per
 * registry host, from its own pushes (a pull of an image whose layers it
 * already had registers no source), and otherwise compresses and uploads the
 * whole layer again on the first push of any image that has it. Used by the
 * suite's build registry (test/support/buildRegistry.ts) and by benchmarks
 * that must not time that first upload.
 */
import { execFileSync } from 'node:child_process';
import { mountBlob, pushImage } from './images.js';

/**
 * Pushes `layer` through the engine to `registry`/`repository`:1; the test's
 * own gzip of it is mounted into that repository too, so that an image
 * pushed later with `mountFrom: repository` does not upload it either.
 */
export async function engineKnowsLayer(registry: string, repository: string, layer: string): Promise<void> {
  const source = `${registry}/ci-source/${repository}`;
  const { digest, manifest } = await pushImage(registry, `ci-source/${repository}`, '1', { layers: [{ path: layer }] });
  execFileSync('docker', ['pull', '-q', `${source}@${digest}`], { stdio: 'ignore' });
  execFileSync('docker', ['tag', `${source}@${digest}`, `${registry}/${repository}:1`], { stdio: 'ignore' });
  execFileSync('docker', ['push', '-q', `${registry}/${repository}:1`], { stdio: 'ignore' });
  const { layers } = JSON.parse(manifest.toString('utf8')) as { layers: Array<{ digest: string }> };
  for (const { digest: blob } of layers) await mountBlob(registry, `ci-source/${repository}`, repository, blob);
}
