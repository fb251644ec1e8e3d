/**
 * The run check: start the image as the spawner would — its own entrypoint,
 * the command `jupyterhub-singleuser --version` — with no network, no
 * capabilities, no new privileges, a read-only root with a tmpfs /tmp, and
 * memory, pids and time limits. The container is always removed.
 */
import { PassThrough } from 'node:stream';
import type { Finding } from '../inspect/analyze.js';
import { BoundedOutput } from '../io/boundedOutput.js';
import type { DockerEngine, PullAuth, PullProgress } from './engine.js';

export interface RunLimits {
  memoryBytes: number;
  pids: number;
  timeoutMs: number;
  /** Output kept for the log, from the start and from the end. */
  outputBytes: number;
}

/** Every check container carries this label; `custom-images.check-id` names its job. */
export const CHECK_LABEL = 'custom-images.check';
export const CHECK_ID_LABEL = 'custom-images.check-id';
/** Which deployment (database) started the container: job ids mean something only there. */
export const DEPLOYMENT_LABEL = 'custom-images.deployment';

/** A writable scratch place in the read-only container: /tmp and every VOLUME of the image. */
const SCRATCH_TMPFS = 'rw,nosuid,nodev,size=64m';

export interface RunCheckRequest {
  /** The image pinned by digest. */
  image: string;
  auth: PullAuth | undefined;
  /** Run as this uid:gid, as the server will (never the image's own USER). */
  user: string;
  limits: RunLimits;
  /** How long the pull may take. */
  pullTimeoutMs?: number | undefined;
  /** Stops the pull and kills the container (the check's deadline). */
  signal?: AbortSignal | undefined;
  /** Labels the container with its job, so that one left by a crash can be found and removed. */
  labels?: Record<string, string>;
  onPull?: (progress: PullProgress) => void;
  log: (line: string) => void;
}

export interface RunCheckResult {
  findings: Finding[];
  /** The version jupyterhub-singleuser printed, if it parsed. */
  version: string | undefined;
  exitCode: number | undefined;
  timedOut: boolean;
  /** Whether this check pulled the image (it was not in the engine before): the caller keeps or removes it. */
  pulled: boolean;
}

/** The version line jupyterhub-singleuser --version prints (e.g. "3.0.0", "4.1.5", "5.0.0b1"). */
function parseVersionOutput(output: string): string | undefined {
  const lines = output
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  for (const line of lines.reverse()) {
    const m = /^(?:jupyterhub-singleuser\s+)?v?(\d+\.\d+(?:\.\d+)?(?:[a-z]+\d*)?(?:\.dev\d+)?)$/i.exec(line);
    if (m?.[1]) return m[1];
  }
  return undefined;
}

/** Pulls, runs and removes the container; never throws for the image's own behaviour, only for engine failures. */
export async function runCheck(engine: DockerEngine, request: RunCheckRequest): Promise<RunCheckResult> {
  const { limits, log } = request;
  const findings: Finding[] = [];
  log(`Pulling ${request.image}`);
  const hadImage = await engine.hasImage(request.image);
  await engine.pull(request.image, request.auth, request.onPull, request.pullTimeoutMs, request.signal);
  log('Pulled; starting jupyterhub-singleuser --version with no network, no capabilities, a read-only root');
  // The image's VOLUME paths would be writable anonymous volumes on the host's disk, without a size limit,
  // and left behind: each becomes a small tmpfs (counted in the container's memory) instead.
  const declared = ((await engine.docker.getImage(request.image).inspect()).Config?.Volumes ?? {}) as Record<string, unknown>;
  const tmpfs: Record<string, string> = { '/tmp': SCRATCH_TMPFS };
  for (const path of Object.keys(declared)) tmpfs[path] = SCRATCH_TMPFS;

  const container = await engine.docker.createContainer({
    Image: request.image,
    Cmd: ['jupyterhub-singleuser', '--version'],
    User: request.user,
    Env: ['JUPYTERHUB_SERVICE_PREFIX=/user/check/', 'JUPYTERHUB_API_URL=http://127.0.0.1:8081/hub/api'],
    Labels: { ...request.labels, [CHECK_LABEL]: 'true' },
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Tmpfs: tmpfs,
      Memory: limits.memoryBytes,
      MemorySwap: limits.memoryBytes,
      PidsLimit: limits.pids,
      NanoCpus: 1_000_000_000,
      AutoRemove: false,
    },
  });
  const output = new BoundedOutput(limits.outputBytes);
  let timedOut = false;
  let exitCode: number | undefined;
  let oomKilled: boolean;
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => output.add(chunk.toString('utf8')));
    engine.docker.modem.demuxStream(stream, sink, sink);
    await container.start();
    const timer = setTimeout(() => {
      timedOut = true;
      container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
    }, limits.timeoutMs);
    request.signal?.addEventListener('abort', () => container.kill({ signal: 'SIGKILL' }).catch(() => undefined), { once: true });
    // If the engine goes away, wait() may never answer: watch it.
    let watching = true;
    const engineGone = new Promise<never>((_, reject) => {
      const watch = async () => {
        let failures = 0;
        while (watching) {
          await new Promise((r) => setTimeout(r, 1000));
          if (!watching) return;
          try {
            await engine.docker.ping();
            failures = 0;
          } catch (err) {
            if (++failures >= 2)
              return reject(
                new Error(`the Docker engine stopped answering during the run (${err instanceof Error ? err.message : String(err)})`),
              );
          }
        }
      };
      void watch();
    });
    try {
      const waited = (await Promise.race([container.wait(), engineGone])) as { StatusCode: number };
      exitCode = waited.StatusCode;
    } finally {
      watching = false;
      clearTimeout(timer);
    }
    // Let the attached stream deliver what is left.
    await new Promise((r) => setTimeout(r, 100));
    const state = (await container.inspect()).State as { OOMKilled?: boolean };
    oomKilled = state.OOMKilled === true;
  } finally {
    // With its volumes, should the engine have made any.
    await container.remove({ force: true, v: true }).catch(() => undefined);
  }

  const text = output.toString();
  for (const line of text.split(/\r?\n/).filter(Boolean)) log(`| ${line}`);
  log(`Exit code ${exitCode ?? 'none'}${timedOut ? ' (killed at the time limit)' : ''}${oomKilled ? ' (out of memory)' : ''}`);
  const version = timedOut ? undefined : parseVersionOutput(text);
  const shown = text.trim().split('\n').slice(-6).join('\n') || '(no output)';
  if (timedOut) {
    findings.push({
      code: 'run.timeout',
      level: 'error',
      message: `jupyterhub-singleuser --version did not finish within ${Math.round(limits.timeoutMs / 1000)} s (at most ${limits.pids} processes, ${Math.round(limits.memoryBytes / 1048576)} MB); it was stopped. Does the image's entrypoint wait for something, or start other programs?`,
    });
  } else if (oomKilled) {
    findings.push({
      code: 'run.out_of_memory',
      level: 'error',
      message: `The image ran out of memory (${Math.round(limits.memoryBytes / 1048576)} MB) while starting jupyterhub-singleuser.`,
    });
  } else if (exitCode !== 0) {
    findings.push({
      code: 'run.exit_code',
      level: 'error',
      message: `jupyterhub-singleuser --version exited with code ${exitCode}. Its output:\n${shown}`,
    });
  } else if (!version) {
    findings.push({
      code: 'run.version_unparsable',
      level: 'error',
      message: `jupyterhub-singleuser --version ran, but printed no version. Its output:\n${shown}`,
    });
  } else {
    findings.push({ code: 'run.version', level: 'info', message: `The image started jupyterhub-singleuser ${version}.` });
  }
  return { findings, version, exitCode, timedOut, pulled: !hadImage };
}
