/**
 * One build of an image at a time, on SQLite and PostgreSQL: a build's
 * layers carry its image's label, so a second build of the same image waits
 * in the queue until the first has ended; builds of other images go on.
 */
import { BuildInputsSchema } from '../../server/builds/inputs.js';
import { describe, expect, it } from 'vitest';
import { BUILD_JOB } from '../../server/builds/job.js';
import { claimJob, takeTurn } from '../../server/jobs/claimJob.js';
import { finishJob } from '../../server/jobs/finishJob.js';
import { queuedJobs } from '../../server/jobs/queuedJobs.js';
import { BuildStore, type NewBuild } from '../../server/builds/store.js';
import { ImageStore } from '../../server/images/store.js';
import type { Knex } from '../../server/store/db.js';
import { migratedDatabase, type Engine } from '../support/database.js';

async function builtImage(db: Knex, name: string, builds: number): Promise<number[]> {
  const now = new Date();
  const target = `registry.example.org/built/ada/${name}:1`;
  const imageId = await new ImageStore(db).insert(
    { owner: 'ada', name, system: 'default', referenceInput: target, reference: target, registry: 'registry.example.org', mountPath: null },
    now,
  );
  const ids: number[] = [];
  for (let number = 1; number <= builds; number++) {
    const build: NewBuild = {
      imageId,
      owner: 'ada',
      number,
      requestedBy: 'ada',
      inputs: BuildInputsSchema.parse({ mode: 'dockerfile', dockerfile: 'FROM registry.example.org/base:1\n' }),
      files: [],
      gitToken: null,
      target: `registry.example.org/built/ada/${name}:${number}`,
      createdAt: now,
    };
    ids.push(await BuildStore.insert(db, build));
  }
  return ids;
}

describe.each<Engine>(['SQLite', 'PostgreSQL'])('one build of an image at a time (%s)', (kind) => {
  it('offers and lets claim the next build of an image only when the running one has ended', async () => {
    const db = await migratedDatabase(kind);
    const store = new BuildStore(db);
    const [first, second] = (await builtImage(db, 'env', 2)) as [number, number];
    const [other] = (await builtImage(db, 'other', 1)) as [number];
    expect(await queuedJobs(db, BUILD_JOB, 10)).toEqual([first, second, other]);

    expect(await claimJob(db, BUILD_JOB, first, 'replica-a', new Date())).toBe(true);
    expect(await queuedJobs(db, BUILD_JOB, 10)).toEqual([other]);
    expect(await claimJob(db, BUILD_JOB, second, 'replica-b', new Date())).toBe(false);
    expect((await store.get(second))?.status).toBe('queued');
    expect(await claimJob(db, BUILD_JOB, other, 'replica-b', new Date())).toBe(true);

    await finishJob(db, BUILD_JOB, { id: first, runner: 'replica-a' }, { status: 'failed', message: 'failed' });
    expect(await queuedJobs(db, BUILD_JOB, 10)).toEqual([second]);
    expect(await claimJob(db, BUILD_JOB, second, 'replica-b', new Date())).toBe(true);
  });

  it('makes a claim that comes while another replica claims a build of the same image wait, then lose', async () => {
    const db = await migratedDatabase(kind);
    const store = new BuildStore(db);
    const [first, second] = (await builtImage(db, 'env', 2)) as [number, number];
    const imageId = (await store.get(first))!.imageId;
    // Replica A in the middle of its claim: its turn for the image taken, its build running but not committed yet.
    const replicaA = await db.transaction();
    await takeTurn(replicaA, BUILD_JOB, imageId);
    await replicaA('builds').where({ id: first }).update({ status: 'running', runner: 'replica-a' });
    const replicaB = claimJob(db, BUILD_JOB, second, 'replica-b', new Date());
    await new Promise((r) => setTimeout(r, 500));
    await replicaA.commit();
    expect(await replicaB).toBe(false);
    expect((await store.get(second))?.status).toBe('queued');
  });
});
