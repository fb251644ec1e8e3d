/**
 * Builds on the Docker engine (dockerode's build API, the engine's classic
 * builder): the build's network as the system says, memory and CPU limits,
 * processes through the admin's cgroup parent (the builder has no pids limit),
 * no privileged mode and no host mounts (the classic builder has neither),
 * intermediate containers always removed, a time limit that cancels the
 * build (the engine stops it when the request ends), and a limit on what it
 * writes, watched while it runs. The build's own layers are known from the
 * engine (runner/buildLayers.ts): a failed or stopped build removes them,
 * and nothing else.
 */
import { upstream } from '../errors.js';
import { labelInstruction } from '../builds/layerLabel.js';
import type { BuildLayerLabel, BuildRequest, BuildResult, ImageBuilder, PreparedBuild, RegistryLogin } from '../builds/builder.js';
import { BuildLayers } from './buildLayers.js';
import { engineError, type DockerEngine } from './engine.js';

type BuildEvent = {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string; Digest?: string; Tag?: string };
};

const STEP_OUTPUT_CHARS = 4096;
/** How often a running build's disk use is measured. */
const DISK_EVERY_MS = 2000;

/**
 * Folds the classic builder's output into the researcher's steps: the LABEL
 * steps added after each FROM are left out (not shown, not counted), so the
 * step numbers are those of their Dockerfile. Text only: which layers the
 * build made is never read from here.
 */
export class BuildProgress {
  step = 0;
  steps = 0;
  instruction = '';
  /** The current step's last lines of output. */
  stepOutput = '';
  /** Added steps seen so far. */
  private hidden = 0;
  private inAdded = false;
  private readonly added: { instruction: string; count: number; marker: string };

  constructor(layers: BuildLayerLabel) {
    this.added = { instruction: labelInstruction(layers.marker), count: layers.added, marker: layers.marker };
  }

  /** Reads one line of output: what of it the researcher sees (undefined: nothing), and the step it starts, if any. */
  line(text: string): { shown: string | undefined; started?: { step: number; steps: number; instruction: string } } {
    const step = /^Step (\d+)\/(\d+) : (.*)$/.exec(text);
    if (step) {
      const instruction = step[3] ?? '';
      if (instruction === this.added.instruction) {
        this.hidden++;
        this.inAdded = true;
        return { shown: undefined };
      }
      this.inAdded = false;
      this.step = Number(step[1]) - this.hidden;
      this.steps = Math.max(this.step, Number(step[2]) - this.added.count);
      this.instruction = this.redact(instruction);
      this.stepOutput = '';
      const started = { step: this.step, steps: this.steps, instruction: this.instruction };
      return { shown: `Step ${this.step}/${this.steps} : ${this.instruction}`, started };
    }
    if (this.inAdded) return { shown: undefined };
    const shown = this.redact(text);
    this.stepOutput = (this.stepOutput + shown + '\n').slice(-STEP_OUTPUT_CHARS);
    return { shown };
  }

  /** The label's value stays out of what is shown (it is the image's, not the log's). */
  redact(text: string): string {
    return text.split(this.added.marker).join('…');
  }
}

export class DockerBuilder implements ImageBuilder {
  constructor(private readonly engine: DockerEngine) {}

  prepare(): PreparedBuild {
    const before = BuildLayers.snapshot(this.engine);
    // Awaited by the build; a build that never begins (its fetch failed) leaves it unread.
    before.catch(() => undefined);
    return { build: (request) => this.build(request, before) };
  }

  private async build(request: BuildRequest, before: Promise<ReadonlySet<string>>): Promise<BuildResult> {
    const overLimit = new AbortController();
    const signal = AbortSignal.any([overLimit.signal, request.signal]);
    const progress = new BuildProgress(request.layers);
    const layers = BuildLayers.of(this.engine, request.layers.marker, await before);
    let tooLarge: { what: 'disk' | 'image'; bytes: number } | undefined;
    const disk = watchDisk(layers, request.limits.diskBytes, (bytes) => {
      tooLarge = { what: 'disk', bytes };
      overLimit.abort();
    });
    let failure: string | undefined;
    try {
      const stream = (await this.engine.docker.buildImage(
        request.context as unknown as NodeJS.ReadableStream,
        {
          t: request.tag,
          dockerfile: request.dockerfile,
          rm: true,
          forcerm: true,
          // From the registry, with the build's own logins, unless every image is named by a digest the service
          // read with them (builds/builder.ts): never another user's pre-pulled image by its tag.
          pull: request.pull,
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
      const show = (line: string, newline: string) => {
        const { shown, started } = progress.line(line);
        if (started) request.onStep(started.step, started.steps, started.instruction);
        if (shown !== undefined) request.onOutput(shown + newline);
      };
      const onText = (raw: string) => {
        // The classic builder colours a step's stderr with terminal escapes; a page shows plain text.
        // eslint-disable-next-line no-control-regex
        pending += raw.replace(/\u001b\[[0-9;]*m/g, '');
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) show(line, '\n');
        // A long line without its end (a progress bar) is shown as it comes, not held.
        if (pending.length > STEP_OUTPUT_CHARS) {
          show(pending, '');
          pending = '';
        }
      };
      failure = await this.engine.followStream<BuildEvent>(stream, (event) => {
        if (event.stream) onText(event.stream);
        else if (event.status) request.onOutput(`${progress.redact(event.status)}\n`);
      });
      if (pending) show(pending, '\n');
      if (failure) {
        failure = progress.redact(failure);
        request.onOutput(`${failure}\n`);
      }
    } catch (err) {
      if (!signal.aborted) throw engineError(err, 'build the image');
      failure = 'stopped';
    } finally {
      await disk.stop();
    }
    if (!failure && !signal.aborted) {
      try {
        tooLarge = await this.oversize(layers, request);
      } catch (err) {
        await this.discard(layers, request.tag);
        throw err;
      }
      if (!tooLarge) return { ok: true };
      await this.discard(layers, request.tag);
    } else {
      await layers.remove();
    }
    return {
      ok: false,
      step: progress.step,
      steps: progress.steps,
      instruction: progress.instruction,
      reason: (failure ?? 'stopped').trim(),
      stepOutput: progress.stepOutput,
      ...(tooLarge ? { tooLarge } : {}),
    };
  }

  /** A built image that is not to be pushed: its tag goes (the image with it, when that was its only name), then its layers. */
  private async discard(layers: BuildLayers, tag: string): Promise<void> {
    await this.engine.removeLayer(tag).catch(() => undefined);
    await layers.remove();
  }

  /** A finished build past a limit: what it wrote (once more: a step may have written past it between two looks), or the image's size. */
  private async oversize(layers: BuildLayers, request: BuildRequest): Promise<{ what: 'disk' | 'image'; bytes: number } | undefined> {
    const written = await layers.written();
    if (written > request.limits.diskBytes) return { what: 'disk', bytes: written };
    let size: number;
    try {
      size = ((await this.engine.docker.getImage(request.tag).inspect()) as { Size: number }).Size;
    } catch (err) {
      throw engineError(err, `inspect the built image ${request.tag}`);
    }
    return size > request.limits.imageBytes ? { what: 'image', bytes: size } : undefined;
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

/**
 * Measures what a running build wrote every few seconds; past `limit`, calls
 * `over` once. `stop` waits for a measurement under way.
 */
function watchDisk(layers: BuildLayers, limit: number, over: (bytes: number) => void): { stop(): Promise<void> } {
  let measuring: Promise<void> | undefined;
  let done = false;
  const timer = setInterval(() => {
    if (measuring || done) return;
    measuring = layers
      .written()
      .then((bytes) => {
        if (bytes > limit && !done) {
          done = true;
          over(bytes);
        }
      })
      // The engine may be busy for a moment: the next look counts.
      .catch(() => undefined)
      .finally(() => (measuring = undefined));
  }, DISK_EVERY_MS);
  return {
    async stop() {
      done = true;
      clearInterval(timer);
      await measuring;
    },
  };
}
