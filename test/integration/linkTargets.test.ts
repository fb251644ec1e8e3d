/**
 * Which image a launch link's build goes into (found by an attack on #24):
 * the visitor's image built from the same repository before, named on the
 * plan, unless others start it (shared with a group, or published): then a
 * new image, so that nobody else's next start runs the commit a link names.
 * The visitor's images are real rows on SQLite and PostgreSQL (LinkStore);
 * the build queue records what it is asked (building is tested elsewhere).
 */
import { describe, expect, it } from 'vitest';
import { inputsColumn, BuildInputsSchema } from '../../server/builds/inputs.js';
import { LinkLaunchStore } from '../../server/links/launchStore.js';
import { LinkService } from '../../server/links/service.js';
import { LinkStore } from '../../server/links/store.js';
import { createLogger } from '../../server/log.js';
import type { Knex } from '../../server/store/db.js';
import { migratedDatabase, type Engine } from '../support/database.js';
import { testAccess, testUser } from '../support/identities.js';
import { insertBuiltImage } from '../support/storage.js';
import { testSystem } from '../support/systems.js';

const REPO = 'https://github.com/lab/environment';
const COMMIT = 'c'.repeat(40);
const NEW_COMMIT = 'd'.repeat(40);
const system = testSystem({
  slug: 'dock',
  build: { enabled: true, pushTo: 'registry.example.org/built', network: 'none', baseImages: [] },
});

/** ada's image `name`, built once from REPO at COMMIT by repo2docker's rules. */
async function repositoryImage(db: Knex, name: string): Promise<number> {
  const id = await insertBuiltImage(db, {
    owner: 'ada',
    name,
    system,
    builds: [
      {
        number: 1,
        digest: `sha256:${name
          .padEnd(64, '0')
          .slice(0, 64)
          .replace(/[^0-9a-f]/g, 'e')}`,
        finishedAt: new Date(),
      },
    ],
  });
  await db('builds')
    .where({ image_id: id })
    .update({ inputs: inputsColumn(BuildInputsSchema.parse({ mode: 'repository', gitUrl: REPO, gitRef: 'main' })), git_commit: COMMIT });
  return id;
}

function links(db: Knex, asked: string[]) {
  return new LinkService({
    store: new LinkStore(db),
    launches: new LinkLaunchStore(db),
    access: testAccess,
    systems: { listEnabled: async () => [system] },
    git: { resolveCommit: async () => NEW_COMMIT },
    builds: {
      rebuild: async (_actor, _owner, imageId) => {
        asked.push(`rebuild ${imageId}`);
        return { number: 2 } as never;
      },
      create: async (_actor, _owner, request) => {
        asked.push(`create ${String((request as { name?: string }).name)}`);
        return { image: { id: 999 }, build: { number: 1 } } as never;
      },
      // The launch waits on its build: never answered here.
      get: () => new Promise(() => undefined),
    },
    images: { load: async () => ({ description: '', mountPathIsDefault: true, mountPath: '' }) as never },
    hub: { serverState: async () => ({ state: 'none' as const }), startServer: async () => {}, stopServer: async () => {} },
    hubBaseUrl: '/',
    logger: createLogger('silent'),
    gitTimeoutMs: 1000,
    buildTimeoutMs: 60_000,
  });
}

describe.each<Engine>(['SQLite', 'PostgreSQL'])("a link's build on %s", (engine) => {
  it('goes into the visitor’s image from the repository, named on the plan', async () => {
    const db = await migratedDatabase(engine);
    try {
      const id = await repositoryImage(db, 'environment');
      const asked: string[] = [];
      const link = { repo: REPO, ref: 'main', system: 'dock', urlpath: '' };
      const plan = await links(db, asked).plan(testUser('ada'), link);
      expect(plan.image).toBeNull();
      expect(plan.rebuilds).toEqual({ id, name: 'environment' });
      await links(db, asked).open(testUser('ada'), link, { stopRunning: false });
      expect(asked).toEqual([`rebuild ${id}`]);
    } finally {
      await db.destroy();
    }
  });

  it('never into one shared with a group or published: a new image instead', async () => {
    const db = await migratedDatabase(engine);
    try {
      const shared = await repositoryImage(db, 'environment');
      await db('image_shares').insert({ image_id: shared, group_name: 'lab', shared_by: 'ada', created_at: new Date() });
      const published = await repositoryImage(db, 'environment-2');
      await db('images').where({ id: published }).update({ published_at: new Date(), published_by: 'admin' });
      const asked: string[] = [];
      const link = { repo: REPO, ref: 'main', system: 'dock', urlpath: '' };
      const plan = await links(db, asked).plan(testUser('ada'), link);
      expect(plan.rebuilds).toBeNull();
      await links(db, asked).open(testUser('ada'), link, { stopRunning: false });
      expect(asked).toEqual(['create environment-3']);
    } finally {
      await db.destroy();
    }
  });
});
