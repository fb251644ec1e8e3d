/** Systems for tests: in memory, and as the seed file a test hub reads (CUSTOM_IMAGES_SYSTEMS_FILE). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NO_BUILDS, OPEN_POLICY, type System } from '../../server/systems/schema.js';

/** A system for tests that need one: everything allowed, nothing required. */
export function testSystem(overrides: Partial<System> = {}): System {
  return {
    slug: 'default',
    displayName: 'Default',
    description: '',
    enabled: true,
    allowedRegistries: ['*'],
    mountPrefixes: [],
    defaultMountPath: '/home/jovyan/work',
    platform: 'linux/amd64',
    spawner: 'docker',
    policy: OPEN_POLICY,
    build: NO_BUILDS,
    ...overrides,
  };
}

/** A seed entry for a Docker system `dock` offering images under `allowedRegistries`, data under /home/jovyan. */
export function dockerSeed(allowedRegistries: string[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    slug: 'dock',
    displayName: 'Docker hosts',
    allowedRegistries,
    mountPrefixes: ['/home/jovyan'],
    defaultMountPath: '/home/jovyan/work',
    spawner: 'docker',
    enabled: true,
    ...overrides,
  };
}

/** Writes a seed file of `systems` to a fresh temporary folder; returns its path. */
export function writeSystemsFile(systems: Array<Record<string, unknown>>): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ci-systems-')), 'systems.json');
  fs.writeFileSync(file, JSON.stringify(systems));
  return file;
}
