/**
 * The one interface between build jobs and what builds: a context and a
 * Dockerfile in, an image pushed to a registry out. The Docker engine's
 * builder implements it (runner/dockerBuilder.ts); a BuildKit daemon on
 * Kubernetes would be another module behind the same two calls.
 */
import type { Readable } from 'node:stream';
import type { BuildNetwork } from '../systems/schema.js';

export interface RegistryLogin {
  username: string;
  password: string;
}

export interface BuildLimits {
  memoryBytes: number;
  cpus: number;
  /** The build job's deadline (builds/job.ts), for messages: the job's signal stops the build then. */
  timeoutMs: number;
  /**
   * A cgroup the host admin made for build steps, with a limit on processes:
   * the engine's builder has no pids limit of its own, but puts each step's
   * container under this parent, whose limit then binds them all.
   */
  cgroupParent?: string;
  /** What one build may write to the engine's disk: the layers it commits and its running step's changes. */
  diskBytes: number;
  /** The largest image a build may make (as the engine stores it, unpacked, its base included); checked before the push. */
  imageBytes: number;
}

/** The label every layer of a build carries (builds/layerLabel.ts), as the builder needs it. */
export interface BuildLayerLabel {
  /** The label's value for this image's builds. */
  marker: string;
  /** The LABEL steps added to the researcher's Dockerfile (one after each FROM): their step numbers leave these out. */
  added: number;
}

export interface BuildRequest {
  /** The context as a tar, streamed from disk (builds/context.ts); read once. */
  context: Readable;
  /** The Dockerfile's path inside the context. */
  dockerfile: string;
  /** What the result is tagged as: registry/repository:tag. */
  tag: string;
  network: BuildNetwork;
  limits: BuildLimits;
  /** The label the Dockerfile handed to the engine gives every layer: how the builder knows its own. */
  layers: BuildLayerLabel;
  /**
   * Whether the engine pulls every image the Dockerfile names, with the build's logins, even one it holds.
   * False only when each is named by the digest the service read with the build's own login: those bytes
   * are the same wherever they come from, and the build's user may read them. An image named by a tag
   * (`COPY --from`) is pulled: the engine's copy may be another user's, of another registry account.
   */
  pull: boolean;
  /** Logins for the registries FROM lines pull from, keyed as Docker keys registries. */
  registryLogins: Record<string, RegistryLogin>;
  /** Stops the build: its time limit passed, or the service is stopping. */
  signal: AbortSignal;
  /** A step started: its number, how many there are, and its instruction. */
  onStep: (step: number, steps: number, instruction: string) => void;
  /** Output of the build, as it comes (steps and their commands' output). */
  onOutput: (text: string) => void;
}

export type BuildResult =
  | { ok: true }
  | {
      ok: false;
      /** The step that failed (0 when the build failed before its first step). */
      step: number;
      steps: number;
      instruction: string;
      /** What the builder said, e.g. "The command '/bin/sh -c exit 3' returned a non-zero code: 3". */
      reason: string;
      /** The last output of the failed step, to say why it failed in words. */
      stepOutput: string;
      /** The build went past a limit of bytes: what it wrote to the disk, or the image it made. */
      tooLarge?: { what: 'disk' | 'image'; bytes: number };
    };

export interface ImageBuilder {
  /**
   * Notes what the engine holds before a build begins: the build's own layers
   * are those that come after. Called as a build is claimed, so that the
   * look overlaps the fetch of its inputs; a build that never begins drops it.
   */
  prepare(): PreparedBuild;
  /** Pushes the tagged image; returns the manifest digest the registry stored. */
  push(
    tag: string,
    login: RegistryLogin | undefined,
    registryKey: string,
    onOutput: (text: string) => void,
    signal: AbortSignal,
  ): Promise<string>;
  /** Removes the local tag once pushed (the registry holds the image; the layer cache stays). */
  untag(tag: string): Promise<void>;
}

export interface PreparedBuild {
  /**
   * Builds and tags the image; on failure (a time, disk or image size limit
   * included), leaves nothing of its own behind (no container, no layer) and
   * removes nothing else.
   */
  build(request: BuildRequest): Promise<BuildResult>;
}
