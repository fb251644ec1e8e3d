/**
 * Volumes of the Docker engine as the clean-up sees them: their labels, the
 * size the engine counts (`docker system df -v`), whether a container
 * (running or stopped) mounts one, and removal, which the engine refuses
 * while a container uses the volume.
 */
import { engineError, type DockerEngine } from './engine.js';

export interface EngineVolume {
  name: string;
  labels: Record<string, string>;
  /** Bytes as the engine counts them; null where it did not (a driver that cannot tell). */
  bytes: number | null;
  /** A container, running or stopped, mounts it. */
  inUse: boolean;
}

/** The engine's volumes that carry `label`, with their sizes and whether a container uses each. */
export async function volumesWithLabel(engine: DockerEngine, label: string): Promise<EngineVolume[]> {
  const { docker } = engine;
  try {
    const listed = (await docker.listVolumes({ filters: { label: [label] } })) as {
      Volumes?: Array<{ Name: string; Labels?: Record<string, string> | null }> | null;
    };
    const volumes = listed.Volumes ?? [];
    if (volumes.length === 0) return [];
    const [usage, containers] = await Promise.all([
      docker.df() as Promise<{ Volumes?: Array<{ Name: string; UsageData?: { Size?: number } | null }> | null }>,
      docker.listContainers({ all: true }),
    ]);
    const sizes = new Map((usage.Volumes ?? []).map((v) => [v.Name, v.UsageData?.Size]));
    const mounted = new Set(containers.flatMap((c) => (c.Mounts ?? []).filter((m) => m.Type === 'volume').map((m) => m.Name ?? '')));
    return volumes.map((v) => {
      const size = sizes.get(v.Name);
      return {
        name: v.Name,
        labels: v.Labels ?? {},
        bytes: typeof size === 'number' && size >= 0 ? size : null,
        inUse: mounted.has(v.Name),
      };
    });
  } catch (err) {
    throw engineError(err, 'list its volumes');
  }
}

/** Whether a container, running or stopped, mounts volume `name` now. */
export async function volumeInUse(engine: DockerEngine, name: string): Promise<boolean> {
  try {
    return (await engine.docker.listContainers({ all: true, filters: { volume: [name] } })).length > 0;
  } catch (err) {
    throw engineError(err, `list the containers of the volume ${name}`);
  }
}

/** Removes volume `name`; the engine refuses (`in_use`) while any container uses it. */
export async function removeVolume(engine: DockerEngine, name: string): Promise<'removed' | 'in_use' | 'missing'> {
  try {
    await engine.docker.getVolume(name).remove();
    return 'removed';
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    if (status === 404) return 'missing';
    if (status === 409) return 'in_use';
    throw engineError(err, `remove the volume ${name}`);
  }
}
