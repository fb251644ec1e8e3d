/**
 * Revisions on real parts (issue #25, points 2 and 5): a registry on
 * 127.0.0.1, the real static check reading each pushed image's layers into
 * its inventory, SQLite and PostgreSQL. One tag is pushed three times with
 * known package changes; the diff names exactly them, a launch answers the
 * digest of the revision rolled back to (or asked for), and with two kept, the
 * oldest is gone from the list and refused at launch in words. A diff with an
 * image the user may not read is a 404 in the words of any such image.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import type { HubIdentity } from '../../server/hub/identity.js';
import { RegistryClient } from '../../server/registry/client.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openTestDatabase, type Engine } from '../support/database.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { migrations } from '../../migrations/index.js';
import { testUser } from '../support/identities.js';
import { passingImage, pushImage, singleuserScript, type ImageSpec, type LayerFiles } from '../support/images.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';
import { revisionServices, type RevisionServices } from '../support/revisionServices.js';
import { testSystem } from '../support/systems.js';

let registries: TestRegistries;
beforeAll(async () => {
  registries = await startRegistries();
}, 60_000);
afterAll(async () => {
  await registries?.stop();
});

const SITE = '/usr/lib/python3/dist-packages';

/** A distribution as pip installs it: metadata and the installer's record. */
function dist(name: string, version: string): LayerFiles {
  const dir = `${SITE}/${name}-${version}.dist-info`;
  return { [`${dir}/METADATA`]: `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`, [`${dir}/INSTALLER`]: 'pip\n' };
}

/** dpkg's status file with these packages installed. */
function dpkg(packages: Record<string, string>): LayerFiles {
  const records = Object.entries(packages).map(
    ([name, version]) => `Package: ${name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${version}\n`,
  );
  return { '/var/lib/dpkg/status': `${records.join('\n')}\n` };
}

/** The passing image plus a layer of known packages. */
function withPackages(python: Record<string, string>, os: Record<string, string>): ImageSpec {
  const base = passingImage();
  const files = Object.entries(python).reduce<LayerFiles>((all, [name, version]) => ({ ...all, ...dist(name, version) }), dpkg(os));
  return { ...base, layers: [...base.layers, { files }] };
}

const ada = testUser('ada');
const vic = testUser('vic');

/** What a refused call says: its status and message. */
async function refusal(call: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await call;
  } catch (err) {
    if (err instanceof AppError) return { status: err.status, message: err.message };
    throw err;
  }
  throw new Error('the call was not refused');
}

describe.each<Engine>(['SQLite', 'PostgreSQL'])('revisions on %s', (engine) => {
  let s: RevisionServices;
  const repo = `lab/moving-${engine.toLowerCase()}`;
  let reference: string;
  const digests: Record<string, string> = {};
  let imageId: number;

  let close: () => Promise<void> = async () => {};
  afterAll(() => close());
  beforeAll(async () => {
    const opened = await openTestDatabase(engine);
    close = opened.close;
    const db = opened.db;
    await migrateLatest(db);
    // Launches ask the registry each time: the test moves a tag between launches a moment apart.
    const registry = new RegistryClient({ trustedHosts: registries.trusted, digestTtlMs: 0 });
    s = revisionServices(db, {
      registry,
      keyring: await createKeyring([]),
      systems: [testSystem({ keptRevisions: 2, spawner: 'kubernetes' })],
    });
    reference = `${registries.open}/${repo}:1`;
  });

  it('records the first check as revision 1, and the tile says it runs', async () => {
    digests.v1 = (
      await pushImage(registries.open, repo, '1', withPackages({ alpha: '1.0', beta: '2.0', gamma: '3.0' }, { libfoo: '1.0-1' }))
    ).digest;
    imageId = (await s.images.create(ada, 'ada', { system: 'default', image: reference, name: 'moving' })).id;
    await s.checkService.request(ada, 'ada', imageId);
    const [check] = await s.runQueued();
    expect(check?.status).toBe('passed');
    const list = await s.revisions.list(ada, 'ada', imageId);
    expect(list.revisions.map((r) => [r.number, r.reason, r.status, r.running])).toEqual([[1, 'first', 'passed', true]]);
    expect(list.revisions[0]?.manifestDigest ?? list.revisions[0]?.digest).toBe(digests.v1);
    expect((await s.revisions.summaries('ada', [await s.images.load('ada', imageId)])).get(imageId)).toEqual({
      running: 1,
      passed: true,
      newest: 1,
      rolledBack: false,
    });
  });

  it('a moved tag: the launch is refused, the new content is read without becoming the image’s, the diff names exactly what changed', async () => {
    digests.v2 = (
      await pushImage(
        registries.open,
        repo,
        '1',
        withPackages({ alpha: '1.1', gamma: '3.0', delta: '0.1' }, { libfoo: '1.0-2', libbar: '5' }),
      )
    ).digest;
    const refused = await refusal(s.launches.launch(ada, 'ada', imageId));
    expect(refused.status).toBe(409);
    expect(refused.message).toMatch(/now points to a different image than the one checked. Open custom images to see what changed/);
    // The refusal queued a read of the new content (once: a second refusal queues nothing more).
    await refusal(s.launches.launch(ada, 'ada', imageId));
    const ran = await s.runQueued();
    expect(ran.map((c) => [c.candidate, c.status])).toEqual([[true, 'passed']]);

    const image = await s.images.load('ada', imageId);
    expect(image.status.code).toBe('changed');
    expect(image.status.label).toBe('Its tag moved: see what changed');
    const changes = await s.revisions.changes(ada, 'ada', imageId);
    expect(changes.list.running?.number).toBe(1);
    expect(changes.list.pending?.number).toBe(2);
    expect(changes.list.pending?.reason).toBe('tag_moved');
    const diff = changes.diff!;
    expect(diff.pythonPackages.added.map((p) => p.name)).toEqual(['delta']);
    expect(diff.pythonPackages.removed.map((p) => p.name)).toEqual(['beta']);
    expect(diff.pythonPackages.changed.map((c) => [c.name, c.from.version, c.to.version])).toEqual([['alpha', '1.0', '1.1']]);
    expect(diff.osPackages.added.map((p) => p.name)).toEqual(['libbar']);
    expect(diff.osPackages.removed).toEqual([]);
    expect(diff.osPackages.changed.map((c) => [c.name, c.from.version, c.to.version])).toEqual([['libfoo', '1.0-1', '1.0-2']]);
    expect(diff.python).toBeNull();
    expect(diff.jupyter).toEqual({});
    // The same diff between the two revisions, asked by number.
    const asked = await s.revisions.diff(ada, 'ada', { imageId, revision: 1 }, { imageId, revision: 2 });
    expect(asked.diff).toEqual(diff);
  });

  it('accept: the new content becomes the image’s, and the launch answers it', async () => {
    expect((await refusal(s.revisions.accept(ada, 'ada', imageId, { revision: 1 }))).message).toMatch(/it is now revision 2, not 1/);
    await s.revisions.accept(ada, 'ada', imageId, { revision: 2 });
    expect((await s.images.load('ada', imageId)).status.code).toBe('passed');
    expect((await s.launches.launch(ada, 'ada', imageId)).digest).toBe(digests.v2);
  });

  it('rollback makes the launch answer the earlier digest, though the tag points elsewhere; a revision is started by number', async () => {
    const { check } = await s.revisions.rollback(ada, 'ada', imageId, 1);
    expect(check).toBeDefined();
    const [ran] = await s.runQueued();
    expect(ran?.status).toBe('passed');
    // Same content, same rules: the result was reused, the image not read again.
    expect(ran?.reusedFrom).not.toBeNull();
    const image = await s.images.load('ada', imageId);
    expect(image.reference).toBe(`${reference}@${digests.v1}`);
    const launched = await s.launches.launch(ada, 'ada', imageId);
    expect(launched.digest).toBe(digests.v1);
    expect(launched.image).toBe(`${registries.open}/${repo}@${digests.v1}`);
    const list = await s.revisions.list(ada, 'ada', imageId);
    expect(list.running?.number).toBe(1);
    expect(list.revisions.map((r) => r.number)).toEqual([2, 1]);
    expect((await s.revisions.summaries('ada', [image])).get(imageId)).toEqual({ running: 1, passed: true, newest: 2, rolledBack: true });
    // A kept revision starts by number, whatever the image runs.
    const second = await s.launches.launch(ada, 'ada', imageId, 2);
    expect(second.digest).toBe(digests.v2);
    expect(second.env.CUSTOM_IMAGES_REVISION).toBe('2');
    // No new revision for content the image had.
    expect((await s.revisions.list(ada, 'ada', imageId)).revisions).toHaveLength(2);
  });

  it('with two kept and a third revision, the oldest is gone from the list and refused at launch in words', async () => {
    await s.revisions.rollback(ada, 'ada', imageId, 2);
    await s.runQueued();
    digests.v3 = (
      await pushImage(registries.open, repo, '1', withPackages({ alpha: '1.2', gamma: '3.0', delta: '0.1' }, { libfoo: '1.0-2' }))
    ).digest;
    // The image is pinned to revision 2: its tag's new content is read on request, as a candidate.
    const look = await s.revisions.lookForNew(ada, 'ada', imageId);
    expect(look.candidate).toBe(true);
    expect(look.reference).toBe(reference);
    await s.runQueued();
    await s.revisions.accept(ada, 'ada', imageId, {});
    // Accepting the tag's content makes the image follow the tag again.
    expect((await s.images.load('ada', imageId)).reference).toBe(reference);
    expect((await s.launches.launch(ada, 'ada', imageId)).digest).toBe(digests.v3);

    const list = await s.revisions.list(ada, 'ada', imageId);
    expect(list.revisions.map((r) => [r.number, r.running])).toEqual([
      [3, true],
      [2, false],
    ]);
    expect(list.dropped).toBe(1);
    const refused = await refusal(s.launches.launch(ada, 'ada', imageId, 1));
    expect(refused).toEqual({
      status: 409,
      message:
        'Revision 1 of "moving" is no longer kept: Default keeps the 2 newest revisions of an image. Start a newer revision, or the image itself.',
    });
    expect((await refusal(s.revisions.rollback(ada, 'ada', imageId, 1))).message).toMatch(/Revision 1 of "moving" is no longer kept/);
    expect((await refusal(s.revisions.exportRevision(ada, 'ada', imageId, 1, 'record.json'))).status).toBe(409);
    expect((await s.launches.launch(ada, 'ada', imageId, 2)).digest).toBe(digests.v2);
    expect((await refusal(s.launches.launch(ada, 'ada', imageId, 9))).message).toMatch(/"moving" has no revision 9/);
  });

  it('a diff with an image the user may not read is 404, in the words of any image that is not theirs', async () => {
    const theirs = (await s.images.create(vic, 'vic', { system: 'default', image: reference, name: 'vics' })).id;
    await s.checkService.request(vic, 'vic', theirs);
    await s.runQueued();
    const words = (await refusal(s.revisions.diff(ada, 'ada', { imageId }, { imageId: 999_999 }))).message;
    for (const call of [
      () => s.revisions.diff(ada, 'ada', { imageId }, { imageId: theirs }),
      () => s.revisions.diff(ada, 'ada', { imageId: theirs }, { imageId }),
      () => s.revisions.diff(vic, 'vic', { imageId: theirs }, { imageId }),
    ]) {
      expect(await refusal(call())).toEqual({ status: 404, message: words });
    }
    expect(words).toMatch(/not yours and not shared with you/);
    // Someone else's user name in the path is refused as for any of their images.
    expect((await refusal(s.revisions.diff(ada, 'vic', { imageId: theirs }, { imageId: theirs }))).status).toBe(404);

    // Published for everyone: what it runs now may be compared, its revisions not.
    const admin: HubIdentity = { kind: 'user', name: 'root', admin: true, groups: [], scopes: ['access:services'] };
    await s.sharing.publish(admin, 'vic', theirs, { description: 'for everyone' });
    const published = await s.revisions.diff(ada, 'ada', { imageId, revision: 2 }, { imageId: theirs });
    expect(published.to).toMatchObject({ owner: 'vic', revision: null, digest: digests.v3 });
    expect(published.diff.pythonPackages.changed.map((c) => [c.name, c.from.version, c.to.version])).toEqual([['alpha', '1.1', '1.2']]);
    expect(await refusal(s.revisions.diff(ada, 'ada', { imageId }, { imageId: theirs, revision: 1 }))).toEqual({
      status: 404,
      message: words,
    });
    // A receiver starts what the owner runs, never a revision of it.
    expect((await refusal(s.launches.launch(ada, 'ada', theirs, 1))).message).toMatch(/Revisions of "vics" are started by its owner/);
  });

  it('exports pin the packages; an image without Python says so in words (409)', async () => {
    const requirements = await s.revisions.exportRevision(ada, 'ada', imageId, 3, 'requirements.txt');
    expect(requirements.body.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual(['alpha==1.2', 'delta==0.1', 'gamma==3.0']);
    // jupyterhub came without an installer record, in the OS's dist-packages: listed, with why.
    expect(requirements.body).toMatch(/# {3}jupyterhub 3\.0\.0: installed with the OS packages/);
    const record = JSON.parse((await s.revisions.exportRevision(ada, 'ada', imageId, 3, 'record.json')).body) as Record<string, unknown>;
    expect(record).toMatchObject({
      registry: registries.open,
      manifestDigest: digests.v3,
      pinned: `${registries.open}/${repo}@${digests.v3}`,
    });

    const noPython: ImageSpec = {
      layers: [
        {
          files: {
            '/etc/passwd': 'root:x:0:0::/root:/bin/sh\n',
            '/usr/local/bin/jupyterhub-singleuser': singleuserScript('/usr/bin/python3'),
          },
        },
      ],
    };
    await pushImage(registries.open, `${repo}-nopython`, '1', noPython);
    const bare = (await s.images.create(ada, 'ada', { system: 'default', image: `${registries.open}/${repo}-nopython:1`, name: 'bare' }))
      .id;
    await s.checkService.request(ada, 'ada', bare);
    const [check] = await s.runQueued();
    expect(check?.status).toBe('failed');
    const refused = await refusal(s.revisions.exportRevision(ada, 'ada', bare, 1, 'requirements.txt'));
    expect(refused.status).toBe(409);
    expect(refused.message).toMatch(/Revision 1 of "bare" has no Python that runs jupyterhub-singleuser/);
    expect((await refusal(s.revisions.exportRevision(ada, 'ada', bare, 1, 'environment.yml'))).status).toBe(409);
    // The record still names what it is.
    expect(JSON.parse((await s.revisions.exportRevision(ada, 'ada', bare, 1, 'record.json')).body)).toMatchObject({
      revision: { status: 'failed' },
    });
  });
});

describe.each<Engine>(['SQLite', 'PostgreSQL'])('migration 017 on %s', (engine) => {
  it('gives images checked before it their current content as revision 1', async () => {
    const { db, close } = await openTestDatabase(engine);
    try {
      await migrateLatest(db);
      const config = { migrationSource: migrationSource(), tableName: 'knex_migrations' };
      // Undo 017 and the migrations after it; the last `up` below then runs 017 alone.
      const applied = async () =>
        ((await db.migrate.list(config)) as [Array<string | { name: string }>, unknown])[0].map((m) =>
          typeof m === 'string' ? m : m.name,
        );
      while ((await applied()).some((name) => name.startsWith('20261206_017_revisions'))) await db.migrate.down(config);
      const now = new Date();
      const [row] = (await db('images')
        .insert({
          owner: 'ada',
          name: 'old',
          system: 'default',
          reference_input: 'r.example/a:1',
          reference: 'r.example/a:1',
          registry: 'r.example',
          created_at: now,
          updated_at: now,
        })
        .returning('id')) as Array<{ id: number } | number>;
      const id = typeof row === 'object' ? Number(row.id) : Number(row);
      const check = {
        image_id: id,
        owner: 'ada',
        system: 'default',
        reference: 'r.example/a:1',
        platform: 'linux/amd64',
        policy_hash: 'p',
        kind: 'static',
        findings: '[]',
        log: '',
        created_at: now,
        finished_at: now,
      };
      await db('checks').insert({ ...check, status: 'passed', digest: 'sha256:old', manifest_digest: 'sha256:old-m' });
      await db('checks').insert({ ...check, status: 'error', digest: null });
      await db.migrate.up(config);
      const revisions = (await db('revisions').select('image_id', 'number', 'digest', 'manifest_digest', 'status', 'reason')) as unknown[];
      expect(revisions).toEqual([
        { image_id: id, number: 1, digest: 'sha256:old', manifest_digest: 'sha256:old-m', status: 'passed', reason: 'first' },
      ]);
    } finally {
      await close();
    }
  });
});

/** The migrations as knex's migrator reads them (server/store/migrate.ts does the same). */
function migrationSource() {
  return {
    getMigrations: async () => migrations,
    getMigrationName: (m: (typeof migrations)[number]) => m.name,
    getMigration: async (m: (typeof migrations)[number]) => m,
  };
}
