/**
 * A base image's build triggers (`OnBuild` in its config: the ONBUILD lines
 * of the Dockerfile that made it) run in every build FROM it, as if they
 * were written there. Anyone who can push to an allowed registry can make
 * such an image (a build here can too, and push it to the site registry), so
 * before the engine sees a Dockerfile, each base image's config is read
 * through the registry client (its address guard, the credentials the build
 * would use) and its triggers are held to the rules of the Dockerfile.
 */
import { upstream } from '../errors.js';
import type { RegistryClient } from '../registry/client.js';
import { parseReference, type ImageReference } from '../registry/reference.js';
import type { RegistryLogin } from './builder.js';
import { imageProblem, triggerFindings, type BasePin, type DockerfileRules, type PulledImage } from './dockerfile.js';

export interface BaseTriggerDeps {
  registry: Pick<RegistryClient, 'session'>;
  /** The login the build would pull the image with. */
  credentialFor(reference: ImageReference): Promise<RegistryLogin | undefined>;
  /** Reads an image's configs (a build that read them already passes its read: one digest for all it decides). */
  imageConfigs?: (reference: ImageReference) => ReturnType<ReturnType<RegistryClient['session']>['imageConfigs']>;
}

/**
 * Checks the triggers of each base image (`kind: 'from'`) and returns the
 * digest each was checked at (the build names it: pinBaseImages) and the
 * images the triggers pull (`COPY --from`), already held to the allowed
 * registries; fails the build in words naming the base image and the
 * trigger otherwise.
 */
export async function checkBaseTriggers(
  deps: BaseTriggerDeps,
  images: readonly PulledImage[],
  rules: Pick<DockerfileRules, 'allowedRegistries' | 'systemName'>,
  signal?: AbortSignal,
): Promise<{ pins: BasePin[]; images: PulledImage[] }> {
  const pulled: PulledImage[] = [];
  const pins: BasePin[] = [];
  for (const base of images) {
    if (base.kind !== 'from') continue;
    const reference = parseReference(base.image);
    let triggers: string[];
    try {
      const { digest, configs } = deps.imageConfigs
        ? await deps.imageConfigs(reference)
        : await deps.registry.session(reference, await deps.credentialFor(reference), signal).imageConfigs();
      pins.push({ line: base.line, image: base.image, digest });
      triggers = [...new Set(configs.flatMap(({ config }) => config.config?.OnBuild ?? []))];
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw upstream(
        'failed',
        `Could not read the base image ${base.image} (line ${base.line}) to check its build triggers: ${reason}`,
        err,
      );
    }
    const found = triggerFindings(triggers, base.stages ?? []);
    const problems = found.problems.map(({ trigger, message }) => `"ONBUILD ${trigger}": ${message}`);
    for (const { image, trigger } of found.images) {
      const problem = imageProblem(image, rules);
      if (problem) problems.push(`"ONBUILD ${trigger}" copies from ${problem}`);
      else pulled.push({ image, line: base.line, kind: 'copy' });
    }
    if (problems.length > 0) {
      throw upstream(
        'failed',
        `The base image ${base.image} (line ${base.line}) carries build triggers that cannot run here: ${problems.join('; ')}`,
      );
    }
  }
  return { pins, images: pulled };
}
