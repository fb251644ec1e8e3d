/**
 * The storage stores' statements on SQLite and PostgreSQL alike: built
 * manifests recorded from builds (and kept when their image goes, back when
 * pushed again), launches read from the audit log (the newest wins, however
 * often read), data volumes seen, nobody's, kept and removed once, users'
 * requests, and the digests images point at and the revisions they keep.
 */
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../server/audit/store.js';
import { keptDigests } from '../../server/storage/keptDigests.js';
import { StorageStore } from '../../server/storage/store.js';
import { SystemStore } from '../../server/systems/store.js';
import type { Knex } from '../../server/store/db.js';
import { migratedDatabase, type Engine } from '../support/database.js';
import { builtSystem, insertBuiltImage } from '../support/storage.js';

const REGISTRY = 'registry.example.org';
const digest = (n: number) => `sha256:${String(n).padStart(64, '0')}`;
const at = (n: number) => new Date(Date.UTC(2026, 11, 1) + n * 3600_000);
const entry = (action: string) => ({ actor: 'root', actorKind: 'user' as const, action, targetType: 'test', targetId: '1', details: {} });

async function seedImage(db: Knex, builds: number[]): Promise<number> {
  return insertBuiltImage(db, {
    owner: 'ada',
    name: 'env',
    system: builtSystem(REGISTRY),
    builds: builds.map((n) => ({ number: n, digest: digest(n), finishedAt: at(n) })),
  });
}

describe.each<Engine>(['SQLite', 'PostgreSQL'])('storage stores on %s', (engine) => {
  it('record built manifests, keep them past their image, and take one back that is pushed again', async () => {
    const db = await migratedDatabase(engine);
    const store = new StorageStore(db);
    const imageId = await seedImage(db, [1, 2, 3]);
    expect(await store.recordBuilds()).toBe(3);
    expect(await store.recordBuilds()).toBe(0);
    const live = await store.liveManifests();
    expect(live.map((m) => [m.repository, m.digest, m.buildNumber, m.imageId, m.system])).toEqual([
      [`${REGISTRY}/built/ada/env`, digest(1), 1, imageId, 'lab'],
      [`${REGISTRY}/built/ada/env`, digest(2), 2, imageId, 'lab'],
      [`${REGISTRY}/built/ada/env`, digest(3), 3, imageId, 'lab'],
    ]);
    expect((await store.manifestsCounted('lab', new Map(), 'ada')).length).toBe(3);
    expect(await store.activeBuildsByImage('lab', 'ada')).toEqual(new Map());

    // Deleted in a transaction, as the image service deletes: the manifests stay, their grace starts.
    await db.transaction(async (trx) => {
      await new StorageStore(trx).imageDeleted(imageId, at(10));
      await trx('images').where({ id: imageId }).delete();
    });
    expect(await db('builds').count({ n: '*' })).toEqual([{ n: engine === 'SQLite' ? 0 : '0' }]);
    expect((await store.liveManifests()).map((m) => m.imageDeletedAt)).toEqual([at(10), at(10), at(10)]);
    expect(await store.manifestsCounted('lab', new Map(), 'ada')).toEqual([]);
    // Another image of hers still points at build 3: it stays in the registry, and in her quota.
    const kept = new Map([[`${REGISTRY}/built/ada/env@${digest(3)}`, 'current']]);
    expect((await store.manifestsCounted('lab', kept, 'ada')).map((m) => m.digest)).toEqual([digest(3)]);

    // Deleted from the registry by a run, once: a second record of the same deletion changes nothing.
    const [first] = await store.liveManifests();
    expect(await store.takeForDeletion([first!.id], 7)).toEqual([first!.id]);
    expect(await store.takeForDeletion([first!.id], 7)).toEqual([first!.id]);
    expect(await store.deleted(7, [{ id: first!.id, at: at(11), entry: entry('storage.manifest.delete') }])).toBe(1);
    expect(await store.deleted(7, [{ id: first!.id, at: at(12), entry: entry('storage.manifest.delete') }])).toBe(0);
    expect(await db('audit').where({ action: 'storage.manifest.delete' }).count({ n: '*' })).toEqual([
      { n: engine === 'SQLite' ? 1 : '1' },
    ]);

    // The same content built again later, by a new image of the same name: in the registry again, that image's.
    const again = await seedImage(db, [1]);
    await db('builds')
      .where({ image_id: again })
      .update({ finished_at: at(20) });
    await store.recordBuilds();
    const revived = (await store.liveManifests()).find((m) => m.digest === digest(1));
    expect(revived).toMatchObject({ status: 'kept', imageId: again, imageDeletedAt: null, pushedAt: at(20) });
  });

  it('read launches from the audit log, the newest of each, however often', async () => {
    const db = await migratedDatabase(engine);
    const store = new StorageStore(db);
    await seedImage(db, [1]);
    await store.recordBuilds();
    const audit = new AuditLog(db);
    const launch = (user: string, n: number, when: Date) =>
      audit.append(
        {
          actor: 'hook',
          actorKind: 'service',
          action: 'image.launch',
          targetType: 'image',
          targetId: '1',
          details: { owner: 'ada', user, system: 'lab', image: `${REGISTRY}/built/ada/env@${digest(n)}`, digest: digest(n) },
        },
        when,
      );
    await launch('ada', 1, at(5));
    await launch('bob', 1, at(3));
    const entries = await store.launchEntriesAfter(0, 10);
    expect(entries.map((e) => e.details.user)).toEqual(['ada', 'bob']);
    for (let i = 0; i < 2; i++) {
      await store.recordManifestLaunches(new Map([[`${REGISTRY}/built/ada/env@${digest(1)}`, at(5 - i * 4)]]));
      await store.recordVolumeLaunches([
        { user: 'ada', system: 'lab', at: at(5 - i * 4) },
        { user: 'bob', system: 'lab', at: at(3) },
      ]);
    }
    expect((await store.liveManifests())[0]?.lastLaunchedAt).toEqual(at(5));
    expect(await store.volumeLaunches()).toEqual(
      new Map([
        ['ada\u0000lab', at(5)],
        ['bob\u0000lab', at(3)],
      ]),
    );
  });

  it('see volumes, mark them nobody’s, keep one, remove one once, and note the ones someone else removed', async () => {
    const db = await migratedDatabase(engine);
    const store = new StorageStore(db);
    const a = await store.sawVolume('engine-1', { name: 'vol-a', user: 'ada', system: 'lab', bytes: 10, inUse: false }, at(1));
    const b = await store.sawVolume('engine-1', { name: 'vol-b', user: 'bob', system: 'lab', bytes: 20, inUse: true }, at(1));
    const seenAgain = await store.sawVolume('engine-1', { name: 'vol-a', user: 'ada', system: 'lab', bytes: 15, inUse: false }, at(2));
    expect(seenAgain).toMatchObject({ id: a.id, bytes: 15, firstSeenAt: at(1), seenAt: at(2), status: 'present' });
    await store.setOrphaned(a.id, { since: at(2), reason: 'user_removed' });
    expect(await store.volume(a.id)).toMatchObject({ orphanedAt: at(2), orphanReason: 'user_removed' });
    expect(await store.setKept(b.id, 'root', at(3), entry('storage.volume.keep'))).toBe(true);
    expect(await store.volume(b.id)).toMatchObject({ keptBy: 'root', keptAt: at(3) });

    expect(await store.takeVolume(a.id, 9)).toBe(true);
    expect(await store.takeVolume(a.id, 9)).toBe(false);
    expect(await store.volumeRemoved(a.id, 9, at(4), entry('storage.volume.remove'))).toBe(true);
    expect(await store.volumeRemoved(a.id, 9, at(5), entry('storage.volume.remove'))).toBe(false);
    expect(await db('audit').where({ action: 'storage.volume.remove' }).count({ n: '*' })).toEqual([{ n: engine === 'SQLite' ? 1 : '1' }]);

    await store.goneFrom('engine-1', new Set(), at(6));
    expect((await store.volumes()).map((v) => [v.name, v.status])).toEqual([
      ['vol-a', 'removed'],
      ['vol-b', 'gone'],
    ]);
    expect(await store.volumesOf('bob')).toEqual([]);

    await store.requestRemoval('ada', at(7), entry('storage.data.request'));
    await store.requestRemoval('ada', at(8), entry('storage.data.request'));
    expect(await store.removalRequestOf('ada')).toEqual(at(7));
    expect(await store.withdrawRemoval('ada', at(9), entry('storage.data.withdraw'))).toBe(true);
    expect(await store.withdrawRemoval('ada', at(9), entry('storage.data.withdraw'))).toBe(false);
    expect(await store.removalRequests()).toEqual(new Map());
  });

  it('know the digests images point at, and the revisions each keeps', async () => {
    const db = await migratedDatabase(engine);
    const numbers = Array.from({ length: 13 }, (_, i) => i + 1);
    const imageId = await seedImage(db, numbers);
    const key = (n: number, repository = 'env') => `${REGISTRY}/built/ada/${repository}@${digest(n)}`;
    expect(await keptDigests(db)).toEqual(new Map([[key(13), 'current']]));

    // Thirteen revisions, as checks of builds 1 to 13 record them; revision 1 was of another repository (an edit since).
    await db('revisions').insert(
      numbers.map((n) => ({
        image_id: imageId,
        owner: 'ada',
        number: n,
        reference: `${REGISTRY}/built/ada/${n === 1 ? 'old' : 'env'}:${n}@${digest(n)}`,
        digest: digest(n),
        manifest_digest: null,
        platform: 'linux/amd64',
        status: 'passed',
        reason: n === 1 ? 'first' : 'rebuilt',
        build_number: n,
        created_at: at(n),
        updated_at: at(n),
      })),
    );
    // An image keeps its system's default, the newest 10 (revisions/service.ts), besides the one it runs.
    const kept = (from: number) =>
      new Map([
        [key(13), 'current'],
        ...numbers
          .filter((n) => n >= from && n < 13)
          .reverse()
          .map((n) => [key(n), 'revision'] as const),
      ]);
    expect(await keptDigests(db)).toEqual(kept(4));
    expect(await keptDigests(db, { owner: 'eve' })).toEqual(new Map());

    // Its system keeps 13: the first revision's, in the repository it was of, is kept again.
    await new SystemStore(db).insert({ ...builtSystem(REGISTRY), keptRevisions: 13 }, at(20));
    expect(await keptDigests(db, { owner: 'ada' })).toEqual(new Map([...kept(2), [key(1, 'old'), 'revision']]));

    // Its system keeps 2: the revision it runs and the one before.
    await db('systems').where({ slug: 'lab' }).update({ kept_revisions: 2 });
    expect(await keptDigests(db)).toEqual(kept(12));
  });
});
