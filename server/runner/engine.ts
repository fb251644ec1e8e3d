/**
 * The Docker engine (dockerode, DOCKER_HOST or the local socket): pulls with
 * the user's credentials as a per-pull auth config, never written to the
 * engine's own configuration.
 */
import path from 'node:path/posix';
import Docker from 'dockerode';
import { AppError, upstream } from '../errors.js';
import { tarball } from '../io/tarball.js';

export interface PullAuth {
  username: string;
  password: string;
  /** The registry as Docker keys it (https://index.docker.io/v1/ for Docker Hub). */
  serveraddress: string;
}

/** Progress of a pull, summed over its layers. */
export interface PullProgress {
  /** Bytes downloaded of the layers' `total` (compressed). */
  current: number;
  total: number;
  /** How far the pull is, 0 to 1: downloading and unpacking each count half. */
  fraction: number;
  status: string;
}

/** One layer of a pull as the engine reports it. */
interface LayerProgress {
  total: number;
  downloaded: number;
  extracted: number;
  done: boolean;
}

type PullEvent = {
  id?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
  progressDetail?: { current?: number; total?: number };
};

/** Folds one progress event of the engine into the layers' states. */
export function trackPull(layers: Map<string, LayerProgress>, event: PullEvent): void {
  if (!event.id || !event.status) return;
  const layer = layers.get(event.id) ?? { total: 0, downloaded: 0, extracted: 0, done: false };
  const { current = 0, total = 0 } = event.progressDetail ?? {};
  if (event.status === 'Downloading') {
    layer.total = total || layer.total;
    layer.downloaded = current;
  } else if (event.status === 'Download complete' || event.status === 'Verifying Checksum') {
    layer.downloaded = layer.total;
  } else if (event.status === 'Extracting') {
    layer.total ||= total;
    layer.downloaded = layer.total;
    layer.extracted = current;
  } else if (event.status === 'Pull complete' || event.status === 'Already exists') {
    layer.done = true;
  } else if (!layers.has(event.id)) {
    return;
  }
  layers.set(event.id, layer);
}

/** The layers' states summed up. */
export function pullProgress(layers: Map<string, LayerProgress>, status: string): PullProgress {
  let current = 0;
  let total = 0;
  let work = 0;
  for (const layer of layers.values()) {
    total += layer.total;
    current += layer.done ? layer.total : Math.min(layer.downloaded, layer.total);
    work += layer.done ? 2 * layer.total : Math.min(layer.downloaded, layer.total) + Math.min(layer.extracted, layer.total);
  }
  return { current, total, fraction: total > 0 ? work / (2 * total) : 0, status };
}

/** dockerode reads DOCKER_HOST itself; we pass it explicitly so that config.ts stays the only reader. */
export function dockerFromHost(dockerHost: string | undefined): Docker {
  if (!dockerHost) return new Docker({ socketPath: '/var/run/docker.sock' });
  if (dockerHost.startsWith('unix://')) return new Docker({ socketPath: dockerHost.slice('unix://'.length) });
  const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
  return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: url.protocol === 'https:' ? 'https' : 'http' });
}

export function engineError(err: unknown, what: string): AppError {
  const message = err instanceof Error ? err.message : String(err);
  if (/ECONNREFUSED|ENOENT|EACCES|socket hang up|ECONNRESET/.test(message)) {
    return upstream('unavailable', `The Docker engine is not reachable (${what}); ask the hub admin to check it.`, err);
  }
  return upstream('failed', `The Docker engine could not ${what}: ${message.replace(/\s+/g, ' ').slice(0, 300)}`, err);
}

/** A volume's top directory was handed to this uid:gid (labels cannot change, so a new owner means a new chown). */
const VOLUME_OWNER_LABEL = 'custom-images.volume-owner';

/** What {@link DockerEngine.prepareVolume} needs. */
export interface VolumeRequest {
  name: string;
  /** The image the server runs, pinned by digest (already on the engine). */
  image: string;
  /** Where the server mounts the volume. */
  target: string;
  uid: number;
  gid: number;
  labels: Record<string, string>;
  /**
   * Whether a new volume is filled with the image's content at `target`, as
   * Docker fills a volume at its first mount: for the image's owner. Someone
   * else's image (shared, published) would leave its files in the user's data
   * for good, startup files run by every later server of theirs included.
   */
  fillFromImage: boolean;
}

/** The words of a pull the engine did not finish in time. */
export function pullTooSlow(image: string, timeoutMs: number): string {
  return `The Docker engine did not finish pulling ${image} within ${Math.round(timeoutMs / 1000)} s; it was stopped. Try again later, or ask the hub admin about the registry's speed.`;
}

export class DockerEngine {
  private engineId: Promise<string> | undefined;

  constructor(readonly docker: Docker) {}

  /** The engine's own id: replicas that talk to one engine share the images it holds. */
  id(): Promise<string> {
    this.engineId ??= this.docker.info().then(
      (info: { ID?: string }) => {
        if (!info.ID) throw new Error('the Docker engine reports no ID');
        return info.ID;
      },
      (err: unknown) => {
        this.engineId = undefined;
        throw engineError(err, 'say who it is');
      },
    );
    return this.engineId;
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (err) {
      throw engineError(err, 'answer a ping');
    }
  }

  /**
   * Pulls `reference` (pinned by digest), reporting progress; the auth config goes with this pull only.
   * A pull that takes longer than `timeoutMs` is cancelled (the engine stops it when the request ends).
   */
  async pull(
    reference: string,
    auth: PullAuth | undefined,
    onProgress?: (p: PullProgress) => void,
    timeoutMs?: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const abort = new AbortController();
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => abort.abort(), timeoutMs);
    try {
      await this.pullUntil(reference, auth, signal ? AbortSignal.any([abort.signal, signal]) : abort.signal, onProgress);
    } catch (err) {
      if (!abort.signal.aborted) throw err;
      throw upstream('timeout', pullTooSlow(reference, timeoutMs ?? 0), err);
    } finally {
      clearTimeout(timer);
    }
  }

  private async pullUntil(
    reference: string,
    auth: PullAuth | undefined,
    signal: AbortSignal,
    onProgress?: (p: PullProgress) => void,
  ): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await this.docker.pull(reference, { ...(auth ? { authconfig: auth } : {}), abortSignal: signal })) as NodeJS.ReadableStream;
    } catch (err) {
      throw engineError(err, `pull ${reference}`);
    }
    signal.addEventListener(
      'abort',
      () => (stream as NodeJS.ReadableStream & { destroy?: (err?: Error) => void }).destroy?.(new Error('pull cancelled')),
      { once: true },
    );
    const layers = new Map<string, LayerProgress>();
    let failure: string | undefined;
    try {
      failure = await this.followStream<PullEvent>(stream, (event) => {
        trackPull(layers, event);
        onProgress?.(pullProgress(layers, event.status ?? ''));
      });
    } catch (err) {
      throw engineError(err, `pull ${reference}`);
    }
    if (failure) throw upstream('failed', `The Docker engine could not pull ${reference}: ${failure}`);
  }

  /**
   * Reads a progress stream of the engine (pull, build, push) to its end,
   * giving each event to `onEvent`. The engine reports a failure inside the
   * stream (`{"error": …}`), not as an HTTP error: that message is what this
   * resolves with; a broken stream rejects.
   */
  followStream<E extends { error?: string; errorDetail?: { message?: string } }>(
    stream: NodeJS.ReadableStream,
    onEvent: (event: E) => void,
  ): Promise<string | undefined> {
    let failure: string | undefined;
    return new Promise((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null) => (err ? reject(err) : resolve(failure)),
        (event: E) => {
          if (event.error || event.errorDetail) failure ??= event.errorDetail?.message ?? event.error;
          else onEvent(event);
        },
      );
    });
  }

  /** The labels of volume `name`; undefined when there is no such volume. */
  async volumeLabels(name: string): Promise<Record<string, string> | undefined> {
    const volume = (await this.docker
      .getVolume(name)
      .inspect()
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode === 404) return undefined;
        throw engineError(err, `inspect the volume ${name}`);
      })) as { Labels?: Record<string, string> | null } | undefined;
    return volume ? (volume.Labels ?? {}) : undefined;
  }

  async hasImage(reference: string): Promise<boolean> {
    try {
      await this.docker.getImage(reference).inspect();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * An image's id and its size as the engine stores it (unpacked, layers
   * shared with other images counted too); undefined when it is not there.
   */
  async imageSize(reference: string): Promise<{ id: string; bytes: number } | undefined> {
    try {
      const image = (await this.docker.getImage(reference).inspect()) as { Id: string; Size: number };
      return { id: image.Id, bytes: image.Size };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw engineError(err, `inspect ${reference}`);
    }
  }

  /** The ids of the images that containers, running or stopped, use (the engine refuses to remove those). */
  async imagesInUse(): Promise<Set<string>> {
    try {
      return new Set((await this.docker.listContainers({ all: true })).map((c) => c.ImageID));
    } catch (err) {
      throw engineError(err, 'list its containers');
    }
  }

  /**
   * Removes this reference of an image (another tag of the same image stays);
   * the engine refuses while any container, running or stopped, uses it.
   */
  async removeImage(reference: string): Promise<'removed' | 'in_use' | 'missing'> {
    return this.remove(reference, false);
  }

  /**
   * Removes one image by id and nothing else: its untagged parents stay
   * (the engine would prune them otherwise, whoever's they are). Refused
   * while a child image or a container uses it.
   */
  async removeLayer(id: string): Promise<'removed' | 'in_use' | 'missing'> {
    return this.remove(id, true);
  }

  private async remove(reference: string, noprune: boolean): Promise<'removed' | 'in_use' | 'missing'> {
    try {
      await this.docker.getImage(reference).remove({ force: false, noprune });
      return 'removed';
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404) return 'missing';
      if (status === 409) return 'in_use';
      throw engineError(err, `remove ${reference}`);
    }
  }

  /**
   * The named volume for a server's data, its top directory owned by the
   * server's uid:gid. A new volume is root's (or the image directory's owner's)
   * wherever the image lacks that path, and the notebook user could not write
   * its own data. No process runs: a container of the image is created (which
   * mounts the volume, copying the image's content there as Docker does, unless
   * `fillFromImage` is false: `nocopy`), the directory entry is written through
   * the archive API, and the container is removed.
   */
  async prepareVolume(request: VolumeRequest): Promise<void> {
    const owner = `${request.uid}:${request.gid}`;
    const volume = (await this.docker
      .getVolume(request.name)
      .inspect()
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode === 404) return undefined;
        throw engineError(err, `inspect the volume ${request.name}`);
      })) as { Labels?: Record<string, string> | null } | undefined;
    if (volume?.Labels?.[VOLUME_OWNER_LABEL] === owner) return;
    try {
      if (!volume) await this.docker.createVolume({ Name: request.name, Labels: { ...request.labels, [VOLUME_OWNER_LABEL]: owner } });
      const container = await this.docker.createContainer({
        Image: request.image,
        Entrypoint: ['custom-images-prepares-a-volume'],
        Cmd: [],
        Labels: request.labels,
        NetworkDisabled: true,
        HostConfig: {
          NetworkMode: 'none',
          Mounts: [{ Type: 'volume', Source: request.name, Target: request.target, VolumeOptions: noCopy(!request.fillFromImage) }],
        },
      });
      try {
        await container.putArchive(await directoryEntry(path.basename(request.target), request.uid, request.gid), {
          path: path.dirname(request.target),
        });
      } finally {
        await container.remove({ force: true, v: false }).catch(() => undefined);
      }
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw engineError(err, `prepare the data volume ${request.name}`);
    }
  }
}

/**
 * A mount's volume options with only NoCopy: the engine's API takes each
 * field as optional (the typings ask for labels and a driver, which would
 * describe a volume to create, not one to mount).
 */
function noCopy(value: boolean): Docker.MountSettings['VolumeOptions'] {
  return { NoCopy: value } as Docker.MountSettings['VolumeOptions'];
}

/** A tar with one directory entry, owned by uid:gid, mode 0755. */
function directoryEntry(name: string, uid: number, gid: number): Promise<Buffer> {
  return tarball((pack) => pack.entry({ name, type: 'directory', mode: 0o755, uid, gid, mtime: new Date() }));
}
