/**
 * Docker engines for tests: the one .ci/services starts (DOCKER_HOST), and a
 * second, private dockerd that a test may stop in the middle of a check.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { CHECK_LABEL } from '../../server/runner/runCheck.js';

/** The engine .ci/services started. */
export function ciDocker(): Docker {
  const host = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  if (!fs.existsSync(host.replace('unix://', '')))
    throw new Error(`no Docker engine at ${host}: run the tests through .ci/run, which starts dockerd`);
  return new Docker({ socketPath: host.replace('unix://', '') });
}

/** Check containers still there (there should be none after a check). */
export async function checkContainers(docker: Docker): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${CHECK_LABEL}=true`] } });
  return list.map((c) => c.Id);
}

export interface PrivateDockerd {
  host: string;
  kill(): Promise<void>;
}

/** A dockerd of the test's own, on its own socket and data root, without networking setup. */
export async function startPrivateDockerd(): Promise<PrivateDockerd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-dockerd-'));
  const socket = path.join(dir, 'docker.sock');
  let output = '';
  const proc: ChildProcess = spawn(
    'dockerd',
    [
      '--host',
      `unix://${socket}`,
      '--data-root',
      path.join(dir, 'data'),
      '--exec-root',
      path.join(dir, 'exec'),
      '--pidfile',
      path.join(dir, 'docker.pid'),
      '--bridge',
      'none',
      '--iptables=false',
      '--ip-masq=false',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const docker = new Docker({ socketPath: socket });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await docker.ping();
      break;
    } catch {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`private dockerd did not start: ${output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return {
    host: `unix://${socket}`,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await exited;
      }
      // Its containerd, shims and containers outlive a hard kill: end them and unmount their layers.
      spawnSync('pkill', ['-9', '-f', dir]);
      const mounts = fs
        .readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1] ?? '')
        .filter((m) => m.startsWith(dir));
      for (const mount of mounts.reverse()) spawnSync('umount', ['-l', mount]);
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
}

/** Removes the data volumes a launch made for servers on `system` (a test's leftovers on the shared engine). */
export async function removeDataVolumes(docker: Docker, system: string): Promise<void> {
  for (const volume of (await docker.listVolumes({ filters: { label: [`custom-images.system=${system}`] } })).Volumes ?? []) {
    await docker
      .getVolume(volume.Name)
      .remove()
      .catch(() => undefined);
  }
}

/**
 * Removes the images in the CI engine that came from these registries
 * (host:port): what run checks, pre-pulls and launches of a test left. No-op
 * without an engine.
 */
export async function removeImagesFrom(hosts: string[]): Promise<void> {
  const socket = (process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock').replace('unix://', '');
  if (!fs.existsSync(socket)) return;
  const docker = new Docker({ socketPath: socket });
  const from = (ref: string) => hosts.some((host) => ref.startsWith(`${host}/`));
  for (const image of await docker.listImages().catch(() => [])) {
    for (const ref of [...(image.RepoTags ?? []), ...(image.RepoDigests ?? [])].filter(from)) {
      await docker
        .getImage(ref)
        .remove({ force: true })
        .catch(() => undefined);
    }
  }
}

/** An entry of a volume: its path inside the volume ('' is the volume's top directory), type and owner. */
export interface VolumeEntry {
  name: string;
  type: string;
  uid: number;
  gid: number;
}

/**
 * What a volume holds, read through the engine's archive API from a container
 * of `image` (already in the engine) that is created but never started, and
 * that mounts the volume with `nocopy`: reading it puts nothing into it.
 */
export async function volumeEntries(docker: Docker, volume: string, image: string): Promise<VolumeEntry[]> {
  const mountPoint = '/ci-reads-this-volume';
  const container = await docker.createContainer({
    Image: image,
    Entrypoint: ['ci-reads-a-volume'],
    Cmd: [],
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      Mounts: [
        {
          Type: 'volume',
          Source: volume,
          Target: mountPoint,
          VolumeOptions: { NoCopy: true } as Docker.MountSettings['VolumeOptions'],
        },
      ],
    },
  });
  try {
    const archive = (await container.getArchive({ path: mountPoint })) as NodeJS.ReadableStream;
    const entries: VolumeEntry[] = [];
    const extract = tar.extract();
    extract.on('entry', (header, stream, next) => {
      const name = header.name.replace(/^[^/]*\/?/, '').replace(/\/$/, '');
      entries.push({ name, type: header.type ?? 'file', uid: header.uid ?? 0, gid: header.gid ?? 0 });
      stream.on('end', next);
      stream.resume();
    });
    await pipeline(archive, extract);
    return entries.sort((a, b) => a.name.localeCompare(b.name));
  } finally {
    await container.remove({ force: true, v: false });
  }
}
