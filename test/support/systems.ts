/** A system for tests that need one: everything allowed, nothing required. */
import { OPEN_POLICY, type System } from '../../server/systems/schema.js';

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
    ...overrides,
  };
}
