/**
 * Builds on the Docker engine (dockerode's build API, the engine's classic
 * builder): the build's network as the system says, memory and CPU limits,
 * processes through the admin's cgroup parent (the builder has no pids limit),
 * no privileged mode and no host mounts (the classic builder has neither),
 * intermediate containers always removed, and a time limit that cancels the
 * build (the engine stops it when the request ends). A failed or stopped
 * build removes the layers it created, so nothing dangles.
 */
import { upstream } from '../errors.js';
import type { BuildRequest, BuildResult, ImageBuilder, RegistryLogin } from '../builds/builder.js';
import { engineError, type DockerEngine } from './engine.js';

type BuildEvent = {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string; Digest?: string; Tag?: string };
};

const STEP_OUTPUT_CHARS = 4096;

/** Folds the classic builder's output into steps and the layers it created. */
export class BuildProgress {
  step = 0;
  steps = 0;
  instruction = '';
  /** The current step's last lines of output. */
  stepOutput = '';
  /** Image ids this build committed (not those taken from the cache), oldest first. */
  readonly created: string[] = [];
  private running = false;

  /** Reads one line of output. Returns a new step, if this line starts one. */
  line(text: string): { step: number; steps: number; instruction: string } | undefined {
    const step = /^Step (\d+)\/(\d+) : (.*)$/.exec(text);
    if (step) {
      this.step = Number(step[1]);
      this.steps = Number(step[2]);
      this.instruction = step[3] ?? '';
      this.running = false;
      this.stepOutput = '';
      return { step: this.step, steps: this.steps, instruction: this.instruction };
    }
    this.stepOutput = (this.stepOutput + text + '\n').slice(-STEP_OUTPUT_CHARS);
    if (/^ ---> Running in [0-9a-f]+$/.test(text)) this.running = true;
    const committed = /^ ---> ([0-9a-f]{12,64})$/.exec(text);
    if (committed?.[1] && this.running) {
      this.created.push(committed[1]);
      this.running = false;
    }
    return undefined;
  }
}

export class DockerBuilder implements ImageBuilder {
  constructor(private readonly engine: DockerEngine) {}

  async build(request: BuildRequest): Promise<BuildResult> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), request.limits.timeoutMs);
    const signal = AbortSignal.any([timeout.signal, request.signal]);
    const progress = new BuildProgress();
    let failure: string | undefined;
    try {
      const stream = (await this.engine.docker.buildImage(
        request.context as unknown as NodeJS.ReadableStream,
        {
          t: request.tag,
          dockerfile: request.dockerfile,
          rm: true,
          forcerm: true,
          networkmode: request.network,
          memory: request.limits.memoryBytes,
          memswap: request.limits.memoryBytes,
          cpuperiod: 100_000,
          cpuquota: Math.round(request.limits.cpus * 100_000),
          ...(request.limits.cgroupParent ? { cgroupparent: request.limits.cgroupParent } : {}),
          registryconfig: request.registryLogins,
          abortSignal: signal,
        } as Parameters<typeof this.engine.docker.buildImage>[1],
      )) as NodeJS.ReadableStream;
      signal.addEventListener('abort', () => (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.(), { once: true });
      let pending = '';
      const onText = (raw: string) => {
        // The classic builder colours a step's stderr with terminal escapes; a page shows plain text.
        // eslint-disable-next-line no-control-regex
        const text = raw.replace(/\u001b\[[0-9;]*m/g, '');
        request.onOutput(text);
        pending += text;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          const started = progress.line(line);
          if (started) request.onStep(started.step, started.steps, started.instruction);
        }
      };
      failure = await this.engine.followStream<BuildEvent>(stream, (event) => {
        if (event.stream) onText(event.stream);
        else if (event.status) request.onOutput(`${event.status}\n`);
      });
      if (failure) request.onOutput(`${failure}\n`);
    } catch (err) {
      if (!signal.aborted) throw engineError(err, 'build the image');
      failure = 'stopped';
    } finally {
      clearTimeout(timer);
    }
    if (!failure && !signal.aborted) return { ok: true };
    await this.removeLayers(progress.created);
    return {
      ok: false,
      step: progress.step,
      steps: progress.steps,
      instruction: progress.instruction,
      reason: (failure ?? 'stopped').trim(),
      timedOut: timeout.signal.aborted,
      stepOutput: progress.stepOutput,
    };
  }

  /**
   * Removes what a failed build committed, newest first; layers another image
   * uses stay. A cancelled step's container may still be going away for a
   * moment, holding its parent layer (409): that one is tried again.
   */
  private async removeLayers(ids: string[]): Promise<void> {
    for (const id of [...ids].reverse()) {
      for (let attempt = 0; attempt < 40; attempt++) {
        const outcome = await this.engine.removeImage(id).catch(() => 'failed');
        if (outcome !== 'in_use') break;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  async push(
    tag: string,
    login: RegistryLogin | undefined,
    registryKey: string,
    onOutput: (text: string) => void,
    signal: AbortSignal,
  ): Promise<string> {
    const image = this.engine.docker.getImage(tag);
    let digest: string | undefined;
    let failure: string | undefined;
    try {
      const stream = (await image.push({
        // The engine wants an auth header on every push, an empty login included.
        authconfig: { ...(login ?? { username: '', password: '' }), serveraddress: registryKey },
        abortSignal: signal,
      } as Parameters<typeof image.push>[0])) as NodeJS.ReadableStream;
      failure = await this.engine.followStream<BuildEvent>(stream, (event) => {
        if (event.aux?.Digest) digest = event.aux.Digest;
        else if (event.status && !/^(Preparing|Waiting|Pushing)$/.test(event.status)) onOutput(`${event.status}\n`);
      });
    } catch (err) {
      throw engineError(err, `push ${tag}`);
    }
    if (failure) throw upstream('failed', `The built image could not be pushed to ${registryKey}: ${failure}`);
    if (!digest) throw upstream('failed', `The registry ${registryKey} did not say which digest it stored the built image under.`);
    return digest;
  }

  async untag(tag: string): Promise<void> {
    await this.engine.removeImage(tag).catch(() => undefined);
  }
}
