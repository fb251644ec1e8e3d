/**
 * Storage per user and per system, from what the database knows: registry
 * bytes of built images (each blob once per user, and once per system),
 * data volumes (as their engine last measured them), and the images the
 * service keeps in engines for fast starts (as the last volumes run of each
 * engine measured them). Pure.
 */
import { distinctBytes } from './rules.js';
import type { PulledUsage } from './runs.js';
import type { BuiltManifestRow, DataVolumeRow } from './store.js';

export interface StorageFigures {
  registryBytes: number;
  /** Built manifests in the registry. */
  builds: number;
  volumeBytes: number;
  volumes: number;
  pulledBytes: number;
  pulledImages: number;
}

export interface StorageUsage {
  bySystem: Array<{ system: string } & StorageFigures>;
  byUser: Array<{ user: string; system: string } & StorageFigures>;
  total: StorageFigures;
}

const zero = (): StorageFigures => ({ registryBytes: 0, builds: 0, volumeBytes: 0, volumes: 0, pulledBytes: 0, pulledImages: 0 });

/** Adds up manifests, volumes and pulled images by user and system. */
export function storageUsage(
  manifests: readonly BuiltManifestRow[],
  volumes: readonly DataVolumeRow[],
  pulled: readonly PulledUsage[],
): StorageUsage {
  const users = new Map<string, { user: string; system: string } & StorageFigures>();
  const systems = new Map<string, { system: string } & StorageFigures>();
  const userOf = (user: string, system: string) => {
    const key = `${user}\u0000${system}`;
    let entry = users.get(key);
    if (!entry) users.set(key, (entry = { user, system, ...zero() }));
    return entry;
  };
  const systemOf = (system: string) => {
    let entry = systems.get(system);
    if (!entry) systems.set(system, (entry = { system, ...zero() }));
    return entry;
  };
  const blobsByUser = new Map<string, BuiltManifestRow[]>();
  const blobsBySystem = new Map<string, BuiltManifestRow[]>();
  for (const m of manifests) {
    if (m.status === 'deleted') continue;
    userOf(m.owner, m.system).builds++;
    systemOf(m.system).builds++;
    const key = `${m.owner}\u0000${m.system}`;
    const own = blobsByUser.get(key);
    if (own) own.push(m);
    else blobsByUser.set(key, [m]);
    const all = blobsBySystem.get(m.system);
    if (all) all.push(m);
    else blobsBySystem.set(m.system, [m]);
  }
  for (const [key, list] of blobsByUser) {
    const [user = '', system = ''] = key.split('\u0000');
    userOf(user, system).registryBytes = distinctBytes(list.map((m) => m.blobs));
  }
  for (const [system, list] of blobsBySystem) systemOf(system).registryBytes = distinctBytes(list.map((m) => m.blobs));
  for (const v of volumes) {
    if (v.status !== 'present' && v.status !== 'removing') continue;
    for (const entry of [userOf(v.user, v.system), systemOf(v.system)]) {
      entry.volumes++;
      entry.volumeBytes += v.bytes ?? 0;
    }
  }
  for (const p of pulled) {
    for (const entry of [userOf(p.owner, p.system), systemOf(p.system)]) {
      entry.pulledImages += p.images;
      entry.pulledBytes += p.bytes;
    }
  }
  const total = zero();
  for (const s of systems.values()) {
    total.builds += s.builds;
    total.volumes += s.volumes;
    total.volumeBytes += s.volumeBytes;
    total.pulledBytes += s.pulledBytes;
    total.pulledImages += s.pulledImages;
  }
  total.registryBytes = distinctBytes(manifests.filter((m) => m.status !== 'deleted').map((m) => m.blobs));
  const bytes = (f: StorageFigures) => f.registryBytes + f.volumeBytes + f.pulledBytes;
  return {
    bySystem: [...systems.values()].sort((a, b) => a.system.localeCompare(b.system)),
    byUser: [...users.values()].sort((a, b) => bytes(b) - bytes(a) || a.user.localeCompare(b.user)),
    total,
  };
}
