/**
 * The job lifecycle of jobs/, one state change at a time, on SQLite and
 * PostgreSQL, with a table of its own: every write a runner makes is guarded
 * by its name and the running status, so a stale replica's late write after
 * another one claimed the job changes nothing of the newer run.
 */
import { BuildInputsSchema } from '../../server/builds/inputs.js';
import { describe, expect, it } from 'vitest';
import { beatJobs } from '../../server/jobs/beatJobs.js';
import { claimJob } from '../../server/jobs/claimJob.js';
import { finishJob } from '../../server/jobs/finishJob.js';
import type { JobKind } from '../../server/jobs/kind.js';
import { assertQueueRoom } from '../../server/jobs/queueRoom.js';
import { activeJobsOf, queuedJobs } from '../../server/jobs/queuedJobs.js';
import { recoverStaleJobs } from '../../server/jobs/recoverStaleJobs.js';
import { requeueJob } from '../../server/jobs/requeueJob.js';
import type { RunningJob } from '../../server/jobs/running.js';
import { holdJob } from '../../server/jobs/running.js';
import { JobWorker } from '../../server/jobs/worker.js';
import { writeProgress } from '../../server/jobs/writeProgress.js';
import { createLogger } from '../../server/log.js';
import type { Knex } from '../../server/store/db.js';
import { migratedDatabase, testDatabase, type Engine } from '../support/database.js';
import { CHECK_JOB } from '../../server/checks/job.js';
import { CheckRecorder } from '../../server/checks/recorder.js';
import { CheckStore } from '../../server/checks/store.js';
import { BUILD_JOB } from '../../server/builds/job.js';
import { BuildStore } from '../../server/builds/store.js';
import { ImageStore } from '../../server/images/store.js';
import { pullJobKind } from '../../server/pulls/job.js';
import { EngineImageStore } from '../../server/pulls/store.js';
import { checkRow, type NewCheckRow } from '../support/checkRows.js';

const KIND: JobKind = {
  what: 'chore',
  table: 'chores',
  queued: 'waiting',
  running: 'busy',
  startedColumn: 'started_at',
  requeued: { note: '' },
  interrupted: (now) => ({ status: 'broken', note: 'interrupted twice', finished_at: now }),
  maxAttempts: 2,
  progressEveryMs: 200,
  onStop: 'wait',
};

async function choresTable(engine: Engine): Promise<Knex> {
  const db = await testDatabase(engine);
  await db.schema.createTable('chores', (t) => {
    t.increments('id').primary();
    t.string('owner').notNullable();
    t.string('status').notNullable();
    t.string('runner').nullable();
    t.timestamp('heartbeat_at').nullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('started_at').nullable();
    t.timestamp('finished_at').nullable();
    t.text('note').notNullable().defaultTo('');
  });
  return db;
}

async function addChore(db: Knex, owner = 'ada', status = KIND.queued): Promise<number> {
  const [row] = (await db('chores').insert({ owner, status }).returning('id')) as Array<{ id: number } | number>;
  return typeof row === 'object' ? Number(row.id) : Number(row);
}

type Chore = { status: string; runner: string | null; note: string; attempts: number; heartbeat_at: unknown; finished_at: unknown };
const read = async (db: Knex, id: number) => (await db('chores').where({ id }).first()) as Chore;

const ago = (ms: number) => new Date(Date.now() - ms);
const until = async (done: () => Promise<boolean>) => {
  for (let i = 0; i < 200 && !(await done()); i++) await new Promise((r) => setTimeout(r, 50));
};

/**
 * Runner `old` held job `id` and stopped beating; the job was recovered and
 * claimed by `new`, which wrote its own progress. Returns the newer state.
 */
async function takenOver(db: Knex, id: number): Promise<Chore> {
  expect(await claimJob(db, KIND, id, 'old', ago(60_000))).toBe(true);
  expect(await recoverStaleJobs(db, KIND, ago(10_000), new Date())).toEqual({ requeued: 1, failed: 0 });
  expect(await claimJob(db, KIND, id, 'new', new Date())).toBe(true);
  expect(await writeProgress(db, KIND, { id, runner: 'new' }, { note: 'the newer run' })).toBe(true);
  return read(db, id);
}

describe.each(['SQLite', 'PostgreSQL'] as const)('the job lifecycle on %s', (engine) => {
  it('claim: of runners asking at once exactly one wins; a running job is not claimed again', async () => {
    const db = await choresTable(engine);
    const id = await addChore(db);
    const won = await Promise.all(['a', 'b', 'c'].map((runner) => claimJob(db, KIND, id, runner, new Date())));
    expect(won.filter(Boolean)).toHaveLength(1);
    const row = await read(db, id);
    expect(row).toMatchObject({ status: 'busy', attempts: 1 });
    expect(row.runner).toBe(['a', 'b', 'c'][won.indexOf(true)]);
    expect(await claimJob(db, KIND, id, 'd', new Date())).toBe(false);
  });

  it('heartbeat: beats only the jobs the runner still holds', async () => {
    const db = await choresTable(engine);
    const mine = await addChore(db);
    const theirs = await addChore(db);
    const then = ago(60_000);
    await claimJob(db, KIND, mine, 'me', then);
    await claimJob(db, KIND, theirs, 'them', then);
    await beatJobs(db, KIND, [mine, theirs], 'me', new Date());
    expect(new Date((await read(db, mine)).heartbeat_at as string).getTime()).toBeGreaterThan(then.getTime() + 30_000);
    expect(new Date((await read(db, theirs)).heartbeat_at as string).getTime()).toBe(then.getTime());
  });

  it('progress: a stale runner writes nothing over the run of the replica that took the job', async () => {
    const db = await choresTable(engine);
    const id = await addChore(db);
    const before = await takenOver(db, id);
    expect(await writeProgress(db, KIND, { id, runner: 'old' }, { note: 'stale progress' })).toBe(false);
    expect(await read(db, id)).toEqual(before);
  });

  it('finish: ends the held job and lets go of it; a stale runner ends nothing', async () => {
    const db = await choresTable(engine);
    const id = await addChore(db);
    const before = await takenOver(db, id);
    expect(await finishJob(db, KIND, { id, runner: 'old' }, { status: 'done', note: 'stale result' })).toBe(false);
    expect(await read(db, id)).toEqual(before);
    expect(await finishJob(db, KIND, { id, runner: 'new' }, { status: 'done', note: 'result' })).toBe(true);
    expect(await read(db, id)).toMatchObject({ status: 'done', note: 'result', runner: 'new' });
    // Ended once: a second end (a late duplicate) changes nothing.
    expect(await finishJob(db, KIND, { id, runner: 'new' }, { status: 'broken' })).toBe(false);
    await expect(finishJob(db, KIND, { id, runner: 'new' }, { status: 'busy' })).rejects.toThrow(/end status/);
  });

  it('re-queue: gives the job back with the reset columns; a stale runner gives back nothing', async () => {
    const db = await choresTable(engine);
    const id = await addChore(db);
    const before = await takenOver(db, id);
    expect(await requeueJob(db, KIND, { id, runner: 'old' })).toBe(false);
    expect(await read(db, id)).toEqual(before);
    expect(await requeueJob(db, KIND, { id, runner: 'new' }, { finished_at: null })).toBe(true);
    expect(await read(db, id)).toMatchObject({ status: 'waiting', runner: null, note: '', heartbeat_at: null });
  });

  it('recovery: a job whose runner stopped beating is queued again, then ended after its last attempt; live ones stay', async () => {
    const db = await choresTable(engine);
    const stale = await addChore(db);
    const live = await addChore(db);
    await claimJob(db, KIND, stale, 'gone', ago(60_000));
    await claimJob(db, KIND, live, 'alive', new Date());
    expect(await recoverStaleJobs(db, KIND, ago(10_000), new Date())).toEqual({ requeued: 1, failed: 0 });
    expect(await read(db, stale)).toMatchObject({ status: 'waiting', runner: null, attempts: 1 });
    await claimJob(db, KIND, stale, 'gone again', ago(60_000));
    expect(await recoverStaleJobs(db, KIND, ago(10_000), new Date())).toEqual({ requeued: 0, failed: 1 });
    expect(await read(db, stale)).toMatchObject({ status: 'broken', note: 'interrupted twice', runner: null, attempts: 2 });
    expect(await read(db, live)).toMatchObject({ status: 'busy', runner: 'alive' });
  });

  it('queue: oldest first, filtered; one user has at most so many active jobs (429 in words)', async () => {
    const db = await choresTable(engine);
    const first = await addChore(db, 'ada');
    const second = await addChore(db, 'bob');
    await addChore(db, 'ada', 'done');
    expect(await queuedJobs(db, KIND, 10)).toEqual([first, second]);
    expect(await queuedJobs(db, KIND, 10, { owner: 'bob' })).toEqual([second]);
    await claimJob(db, KIND, first, 'r', new Date());
    await addChore(db, 'ada');
    expect(await activeJobsOf(db, KIND, 'ada')).toBe(2);
    await expect(assertQueueRoom(db, KIND, 'ada', 3, 30)).resolves.toBeUndefined();
    await expect(assertQueueRoom(db, KIND, 'ada', 2, 30)).rejects.toMatchObject({
      status: 429,
      message: 'ada has 2 chores waiting or running already (at most 2). Start another one when one of them is done.',
    });
  });

  it('a running job writes its newest progress at the kind’s pace, its end once, and nothing after it', async () => {
    const db = await choresTable(engine);
    const id = await addChore(db);
    const job = (await holdJob(db, KIND, id, 'r'))!;
    for (let i = 1; i <= 50; i++) job.progress(() => ({ note: `line ${i}` }));
    await job.flush();
    expect((await read(db, id)).note).toBe('line 50');
    expect(await job.finish({ status: 'done', note: 'result' })).toBe(true);
    job.progress(() => ({ note: 'after the end' }));
    await job.flush();
    expect(await job.finish({ status: 'broken' })).toBe(false);
    expect(await read(db, id)).toMatchObject({ status: 'done', note: 'result' });
    expect(await holdJob(db, KIND, id, 'other')).toBeUndefined();
  });
});

describe('the worker', () => {
  const logger = createLogger('silent');
  const worker = (db: Knex, kind: JobKind, run: (job: RunningJob) => Promise<unknown>) =>
    new JobWorker<{ id: number }>({
      db,
      kind,
      load: async (id) => ({ id }),
      run: (_row, job) => run(job),
      logger,
      concurrency: 2,
      pollMs: 50,
      deadlineGraceMs: 300,
    });

  it('at the deadline aborts the run, which ends in its own words', async () => {
    const db = await choresTable('SQLite');
    const id = await addChore(db);
    const kind: JobKind = { ...KIND, deadline: { ms: 200, exceeded: () => ({ status: 'broken', note: 'by the lifecycle' }) } };
    const w = worker(db, kind, async (job) => {
      await new Promise((resolve) => job.signal.addEventListener('abort', resolve));
      return job.finish({ status: 'broken', note: `stopped: ${job.stopReason}` });
    });
    w.start();
    await until(async () => (await read(db, id)).status === 'broken');
    await w.stop();
    expect(await read(db, id)).toMatchObject({ status: 'broken', note: 'stopped: deadline' });
  });

  it('ends a run that ignores its deadline itself, and the run’s late end changes nothing', async () => {
    const db = await choresTable('SQLite');
    const id = await addChore(db);
    let late: Promise<boolean> | undefined;
    const kind: JobKind = { ...KIND, deadline: { ms: 200, exceeded: () => ({ status: 'broken', note: 'by the lifecycle' }) } };
    const w = worker(db, kind, async (job) => {
      await new Promise((r) => setTimeout(r, 1500));
      late = job.finish({ status: 'done', note: 'too late' });
      return late;
    });
    w.start();
    await until(async () => late !== undefined);
    await w.stop();
    expect(await late).toBe(false);
    expect(await read(db, id)).toMatchObject({ status: 'broken', note: 'by the lifecycle' });
  });

  it('on stop, queues again the jobs of a kind that is re-queued, and lets the others end', async () => {
    const db = await choresTable('SQLite');
    const requeued = await addChore(db);
    const w = worker(db, { ...KIND, onStop: 'requeue' }, async (job) => {
      // A run that stops when told and leaves its ending to the lifecycle.
      await new Promise((resolve) => job.signal.addEventListener('abort', resolve));
    });
    w.start();
    await until(async () => (await read(db, requeued)).status === 'busy');
    await w.stop();
    expect(await read(db, requeued)).toMatchObject({ status: 'waiting', runner: null, note: '' });

    const waited = await addChore(db);
    const w2 = worker(db, KIND, async (job) => {
      await new Promise((r) => setTimeout(r, 300));
      return job.finish({ status: 'done', note: job.signal.aborted ? 'aborted' : 'ran to its end' });
    });
    w2.start();
    await until(async () => (await read(db, waited)).status === 'busy');
    await w2.stop();
    expect(await read(db, waited)).toMatchObject({ status: 'done', note: 'ran to its end' });
  });
});

describe.each(['SQLite', 'PostgreSQL'] as const)('each job kind on %s', (engine) => {
  /** A queued job of each kind, in its real table. */
  const kinds: Array<[string, JobKind, (db: Knex) => Promise<number>, Record<string, unknown>]> = [
    ['check', CHECK_JOB, (db) => new CheckStore(db).insert(queuedCheck()), { log: 'stale', status: 'failed' }],
    [
      'pull',
      pullJobKind(60_000),
      async (db) => {
        await new EngineImageStore(db).request(
          'engine-1',
          'registry.example.org/lab/env@sha256:' + 'a'.repeat(64),
          { owner: 'ada', imageId: 1 },
          new Date(),
        );
        return Number(((await db('engine_images').first('id')) as { id: number }).id);
      },
      { fraction: 0.5, status: 'failed', message: 'stale' },
    ],
    [
      'build',
      BUILD_JOB,
      async (db) => {
        const imageId = await new ImageStore(db).insert(
          { owner: 'ada', name: 'env', system: 'default', referenceInput: 'r/e:1', reference: 'r/e:1', registry: 'r', mountPath: null },
          new Date(),
        );
        return BuildStore.insert(db, queuedBuild(imageId));
      },
      { log: 'stale', status: 'failed', message: 'stale' },
    ],
  ];

  it.each(kinds)(
    '%s: a stale runner’s progress, end and re-queue change nothing of the newer run',
    async (_what, kind, add, staleColumns) => {
      const db = await migratedDatabase(engine);
      const id = await add(db);
      const stale = (await holdJob(db, kind, id, 'old', ago(60_000)))!;
      expect(await recoverStaleJobs(db, kind, ago(10_000), new Date())).toEqual({ requeued: 1, failed: 0 });
      const fresh = (await holdJob(db, kind, id, 'new'))!;
      const before = (await db(kind.table).where({ id }).first()) as Record<string, unknown>;
      stale.progress(() => staleColumns);
      await stale.flush();
      expect(await db(kind.table).where({ id }).first()).toEqual(before);
      expect(await stale.finish(staleColumns)).toBe(false);
      expect(await db(kind.table).where({ id }).first()).toEqual(before);
      const again = (await holdJob(db, kind, id, 'new')) ?? fresh;
      expect(again).toBe(fresh);
      expect(before).toMatchObject({ status: kind.running, runner: 'new', attempts: 2 });
    },
  );

  it('checks: a stale runner’s log, progress and result change nothing of the run that took over', async () => {
    const db = await migratedDatabase(engine);
    const store = new CheckStore(db);
    const id = await store.insert(queuedCheck());
    const stale = (await holdJob(db, CHECK_JOB, id, 'old', ago(60_000)))!;
    await recoverStaleJobs(db, CHECK_JOB, ago(10_000), new Date());
    const fresh = (await holdJob(db, CHECK_JOB, id, 'new'))!;
    const newer = new CheckRecorder(fresh, (await store.get(id))!, () => new Date());
    newer.log('the newer run');
    await fresh.flush();

    const older = new CheckRecorder(stale, (await store.get(id))!, () => new Date());
    older.log('the stale run');
    older.report({ phase: 'layers', message: 'stale progress' });
    await stale.flush();
    await older.finish('failed', [{ code: 'stale', level: 'error', message: 'a stale result' }]);
    expect(await store.get(id)).toMatchObject({ status: 'running', runner: 'new', log: 'the newer run\n', findings: [] });

    await newer.finish('passed', []);
    expect(await store.get(id)).toMatchObject({ status: 'passed', runner: 'new', log: 'the newer run\n', attempts: 2 });
  });
});

function queuedBuild(imageId: number): Parameters<typeof BuildStore.insert>[1] {
  return {
    imageId,
    owner: 'ada',
    number: 1,
    requestedBy: 'ada',
    inputs: BuildInputsSchema.parse({ mode: 'dockerfile', dockerfile: 'FROM scratch\n' }),
    files: [],
    gitToken: null,
    target: 'registry.example.org/built/ada/env:1',
    createdAt: new Date(),
  };
}

function queuedCheck(): NewCheckRow {
  return checkRow({ policyHash: 'p' });
}
