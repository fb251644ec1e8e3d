/**
 * Building needs a limit on the processes of build steps: the engine's
 * builder has none of its own, so without the host admin's cgroup parent
 * (CUSTOM_IMAGES_BUILD_CGROUP_PARENT) the admin form and API refuse to turn
 * building on and say why, a seed file with building on stops the start, and
 * a system that had building on from before builds nothing. (That a fork
 * bomb stops at the parent's limit: test/integration/builds.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { SystemService } from '../../server/systems/service.js';
import { SystemStore } from '../../server/systems/store.js';
import { buildServices } from '../support/builds.js';
import { migratedDatabase } from '../support/database.js';
import { testAccess, testUser } from '../support/identities.js';
import { testSystem } from '../support/systems.js';

const admin = { ...testUser('root'), admin: true };

/** What the admin form (and the API) send for a system that builds. */
const building = {
  slug: 'builds',
  displayName: 'Builds here',
  allowedRegistries: 'registry.example.org/*',
  defaultMountPath: '/home/jovyan/work',
  buildEnabled: 'on',
  buildPushTo: 'registry.example.org/built',
};

async function systemsOn(buildProcessLimit: boolean) {
  const db = await migratedDatabase('SQLite');
  const keyring = await createKeyring([new Uint8Array(32).fill(5)]);
  return { db, systems: new SystemService({ store: new SystemStore(db), keyring, access: testAccess, buildProcessLimit }) };
}

describe('building without a limit on processes', () => {
  it('is refused when an admin turns it on, naming the setting the host admin needs, and nothing is saved', async () => {
    const { db, systems } = await systemsOn(false);
    const err = (await systems.create(admin, building).catch((e: unknown) => e)) as AppError;
    expect(err).toBeInstanceOf(AppError);
    expect(err.status).toBe(400);
    expect(err.fields.buildEnabled).toMatch(/^Building cannot be turned on: build steps would have no limit on processes/);
    expect(err.fields.buildEnabled).toMatch(/CUSTOM_IMAGES_BUILD_CGROUP_PARENT/);
    expect(await db('systems').count({ n: '*' }).first()).toEqual({ n: 0 });

    // A system without building is saved; turning building on later is refused the same way.
    await systems.create(admin, { ...building, buildEnabled: '' });
    const later = (await systems.update(admin, 'builds', building).catch((e: unknown) => e)) as AppError;
    expect(later.status).toBe(400);
    expect(later.fields.buildEnabled).toMatch(/no limit on processes/);
    expect((await systems.get('builds'))?.build.enabled).toBe(false);
  });

  it('stops a seed file that turns it on, saying why', async () => {
    const { db, systems } = await systemsOn(false);
    await expect(systems.seed([{ ...building, buildEnabled: true }])).rejects.toThrow(
      /the seeded system builds has buildEnabled: Building cannot be turned on: build steps would have no limit on processes/,
    );
    expect(await db('systems').count({ n: '*' }).first()).toEqual({ n: 0 });
  });

  it('is allowed once the host admin named a cgroup parent', async () => {
    const { systems } = await systemsOn(true);
    expect((await systems.create(admin, building)).build.enabled).toBe(true);
    expect(await systems.seed([{ ...building, slug: 'seeded', buildEnabled: true }])).toEqual(['seeded']);
  });

  it('builds nothing on a system that had building on from before, and says why', async () => {
    const db = await migratedDatabase('SQLite');
    const system = testSystem({
      allowedRegistries: ['registry.example.org/*'],
      build: { enabled: true, pushTo: 'registry.example.org/built', network: 'none', baseImages: [] },
    });
    const unbounded = buildServices(db, {
      keyring: await createKeyring([new Uint8Array(32).fill(5)]),
      trustedRegistries: [],
      trustedGitHosts: [],
      systems: [system],
    });
    const { build } = await unbounded.builds.create(
      testUser('ada'),
      'ada',
      { name: 'env', system: 'default', mode: 'dockerfile', dockerfile: 'FROM registry.example.org/base:1\nRUN true\n' },
      [],
    );
    const done = await unbounded.run(build.id);
    expect(done.status).toBe('failed');
    expect(done.message).toMatch(/^This service builds nothing yet: build steps would have no limit on processes/);
    expect(done.step).toBe(0);
  });
});
