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
  timeoutMs: number;
  /**
   * A cgroup the host admin made for build steps, with a limit on processes:
   * the engine's builder has no pids limit of its own, but puts each step's
   * container under this parent, whose limit then binds them all.
   */
  cgroupParent?: string;
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
  /** Logins for the registries FROM lines pull from, keyed as Docker keys registries. */
  registryLogins: Record<string, RegistryLogin>;
  /** Stops the build (the service is stopping); the time limit is the builder's own. */
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
      timedOut: boolean;
      /** The last output of the failed step, to say why it failed in words. */
      stepOutput: string;
    };

export interface ImageBuilder {
  /** Builds and tags the image; on failure, leaves nothing behind (no container, no untagged layer). */
  build(request: BuildRequest): Promise<BuildResult>;
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
