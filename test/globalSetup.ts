/**
 * Once a test run: the suite's build registry (test/support/buildRegistry.ts),
 * on loopback, for the files that build on the Debian base image. A run
 * without docker-registry (unit tests on a bare machine) provides none.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startRegistries, type TestRegistries } from './support/registry.js';

let registries: TestRegistries | undefined;
let dir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  if (!fs.existsSync(process.env.DOCKER_REGISTRY_BIN ?? '/usr/bin/docker-registry')) {
    project.provide('buildRegistry', { host: '', dir: '' });
    return;
  }
  registries = await startRegistries();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-build-registry-'));
  project.provide('buildRegistry', { host: registries.open, dir });
}

export async function teardown(): Promise<void> {
  // Its stop removes what the engine holds from it, the warm base included.
  await registries?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
