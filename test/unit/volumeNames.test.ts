/**
 * Data volume names over a table of crafted hub names: one per (user,
 * system), valid for Docker and as a Kubernetes claim, and never the name
 * DockerSpawner gives a hub user's volume (`jupyterhub-user-{username}`,
 * escaped by DockerSpawner itself, run here: both its escapes), which the
 * old names could be.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { dataVolumeName, isLegacyVolumeOf, legacyDataVolumeName } from '../../server/launch/volumes.js';

/** Docker's rule for volume names, and Kubernetes' for object names (a DNS-1123 subdomain). */
const DOCKER_VOLUME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const long = 'a'.repeat(40);
/** Hub names crafted against the old scheme (names cut at 40, 32 bits of hash, a spawner's own naming), and ordinary ones. */
const USERS = [
  'ada',
  'Ada',
  'ADA',
  'bob',
  `${long}-victim`,
  `${long}-forger`,
  legacyDataVolumeName('ada', 'dock').slice('jupyterhub-user-'.length),
  'ada-dock',
  'ada.dock',
  'ada_dock',
  'alice.smith@example.org',
  '日本',
  'x',
];
const SYSTEMS = ['dock', 'kube', 'JSC-Cloud', 'a.b'];

/** What DockerSpawner 13 names `jupyterhub-user-{username}` for each hub name, with its default and its legacy escape. */
function dockerSpawnerVolumes(names: string[]): string[] {
  const script = `
import json, sys
from dockerspawner import DockerSpawner
names = json.load(sys.stdin)
print(json.dumps([f"jupyterhub-user-{e(n)}" for n in names for e in (DockerSpawner._escape, DockerSpawner._legacy_escape)]))
`;
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify(names) }).toString()) as string[];
}

describe('data volume names', () => {
  const pairs = USERS.flatMap((user) => SYSTEMS.map((system) => [user, system] as const));
  const names = pairs.map(([user, system]) => dataVolumeName(user, system));

  it('are distinct for every (user, system) of the table, where the old names were not', () => {
    expect(new Set(names).size).toBe(pairs.length);
    // The old ones: the two long names shared everything but 32 bits of hash; the crafted one is a spawner's volume.
    expect(legacyDataVolumeName(`${long}-victim`, 'dock').slice(0, -8)).toBe(legacyDataVolumeName(`${long}-forger`, 'dock').slice(0, -8));
  });

  it.each(pairs)('for %j on %j: a valid Docker volume and Kubernetes claim name', (user, system) => {
    const name = dataVolumeName(user, system);
    expect(name).toMatch(DOCKER_VOLUME);
    expect(name).toMatch(DNS_SUBDOMAIN);
    expect(name.length).toBeLessThanOrEqual(253);
    expect(name).toMatch(/^jupyterhub-user-[a-z0-9-]+\.[a-z0-9-]+\.[0-9a-f]{64}$/);
  });

  it('are never a volume DockerSpawner makes for a hub user (the old ones were)', () => {
    const spawners = new Set(dockerSpawnerVolumes([...USERS, ...names.map((n) => n.slice('jupyterhub-user-'.length))]));
    expect(names.filter((n) => spawners.has(n))).toEqual([]);
    expect(spawners.has(legacyDataVolumeName('ada', 'dock'))).toBe(true);
  });

  it.each([
    [{ 'custom-images.owner': 'ada', 'custom-images.system': 'dock' }, true],
    [{ 'custom-images.owner': 'ada', 'custom-images.system': 'dock', 'custom-images.user': 'ada' }, true],
    // Made for someone whose hub name shares the old name, or by a spawner (no labels), or for another system.
    [{ 'custom-images.owner': 'Ada', 'custom-images.system': 'dock' }, false],
    [{}, false],
    [{ 'custom-images.owner': 'ada', 'custom-images.system': 'kube' }, false],
    [undefined, false],
  ])('an old-name volume labelled %j is ada’s on dock: %s', (labels, mine) => {
    expect(isLegacyVolumeOf(labels, 'ada', 'dock')).toBe(mine);
  });
});
