/**
 * Two service processes on one PostgreSQL with 20 queued check jobs: each job
 * runs exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { pushImage, pythonWithJupyterhub, singleuserScript } from '../support/images.js';
import { createTestDatabase } from '../support/postgres.js';
import { slowProxy, startRegistries, type TestRegistries } from '../support/registry.js';
import { queueCheck, startService, waitForStatus, type ServiceProcess } from '../support/service.js';

let pg: { url: string; drop(): Promise<void> };
let db: Knex;
let registries: TestRegistries;
const services: ServiceProcess[] = [];

beforeAll(async () => {
  registries = await startRegistries();
  pg = await createTestDatabase();
  db = openDatabase(pg.url);
  await migrateLatest(db);
}, 60_000);

afterAll(async () => {
  for (const s of services) await s.kill();
  await db?.destroy();
  await pg?.drop();
  await registries?.stop();
});

describe('two replicas on one PostgreSQL', () => {
  it('run each of 20 queued jobs exactly once', async () => {
    // Each registry request takes 100 ms, so that no replica can finish all jobs before the other looks.
    const slow = await slowProxy(registries.open, 100);
    const env = {
      CUSTOM_IMAGES_DATABASE_URL: pg.url,
      CUSTOM_IMAGES_RUN_CHECKS: 'false',
      CUSTOM_IMAGES_CHECK_CONCURRENCY: '2',
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: slow.host,
    };
    services.push(...(await Promise.all([startService(env), startService(env)])));
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) {
      // Distinct images, so that no job is answered from another's result.
      await pushImage(registries.open, `replica/img${i}`, '1', {
        layers: [
          { files: pythonWithJupyterhub() },
          { files: { '/usr/local/bin/jupyterhub-singleuser': singleuserScript('/usr/bin/python3'), [`/opt/marker${i}`]: String(i) } },
        ],
      });
    }
    for (let i = 0; i < 20; i++) ids.push(await queueCheck(db, `user${i % 4}`, `${slow.host}/replica/img${i}:1`, 'static'));

    const rows = [];
    for (const id of ids) rows.push(await waitForStatus(db, id, (s) => s !== 'queued' && s !== 'running', 90_000));
    expect(rows.map((r) => r.status)).toEqual(Array(20).fill('passed'));
    expect(rows.map((r) => Number(r.attempts))).toEqual(Array(20).fill(1));
    expect(rows.every((r) => r.reused_from === null)).toBe(true);
    // Both replicas took part.
    const runners = new Set(rows.map((r) => String(r.runner).split(':')[1]));
    expect(runners.size).toBe(2);
    for (const s of services) expect(s.log()).not.toMatch(/"level":"error"/);
    await slow.stop();
  });
});
