/**
 * The clean-up's bulk writes let requests in between their statements (issue
 * 26's measured row: the launch API's p99 unchanged while a clean-up runs).
 * On SQLite every statement runs synchronously and knex resolves it in
 * microtasks, so awaited statements back to back hold the event loop: a
 * launch that arrives meanwhile is not even read until the last one is done.
 * Here a real HTTP request arrives at the clean-up's first write; its handler
 * reads the database as a launch does; it must be answered while the
 * clean-up still writes, not after its last statement.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { StorageStore } from '../../server/storage/store.js';
import type { Knex } from '../../server/store/db.js';
import { migratedDatabase, type Engine } from '../support/database.js';
import { builtSystem, insertBuiltImage } from '../support/storage.js';

const REGISTRY = 'registry.example.org';
const MANIFESTS = 3000;
const digest = (n: number) => `sha256:${String(n).padStart(64, '0')}`;
const at = (n: number) => new Date(Date.UTC(2026, 11, 1) + n * 60_000);

/** A write to built_manifests, as SQLite (backticks) and PostgreSQL (double quotes) quote it. */
const WRITE = /^(insert into|update) [`"]built_manifests[`"]/;

/**
 * Runs `work`; at its first write a request comes in over HTTP, answered
 * after a read of the image as a launch reads it. Returns how many writes
 * had started when the answer arrived, and how many `work` made in all.
 */
async function answeredAmid(db: Knex, imageId: number, work: () => Promise<unknown>): Promise<{ answeredAfter: number; writes: number }> {
  const server = http.createServer((_req, res) => {
    void db('images')
      .where({ id: imageId })
      .first()
      .then((row: unknown) => res.end(row ? 'found' : 'missing'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let writes = 0;
  let request: Promise<{ body: string; after: number }> | undefined;
  const onQuery = (query: { sql: string }) => {
    if (!WRITE.test(query.sql)) return;
    writes++;
    request ??= new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, agent: false }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ body, after: writes }));
        })
        .on('error', reject);
    });
  };
  db.on('query', onQuery);
  try {
    await work();
  } finally {
    db.off('query', onQuery);
  }
  try {
    if (!request) throw new Error('the work wrote nothing');
    const answer = await request;
    expect(answer.body).toBe('found');
    return { answeredAfter: answer.after, writes };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Bulk writes of a clean-up: `ids` and `keys` name the 3,000 recorded manifests (none yet for the recording itself). */
const WORK: Array<{ what: string; recorded: boolean; work: (store: StorageStore, ids: number[], keys: string[]) => Promise<unknown> }> = [
  { what: 'recording 3,000 builds', recorded: false, work: (store) => store.recordBuilds() },
  { what: 'taking 3,000 manifests for deletion', recorded: true, work: (store, ids) => store.takeForDeletion(ids, 1) },
  { what: 'noting 3,000 manifests unused', recorded: true, work: (store, ids) => store.setUnusedSince(ids, at(0)) },
  {
    what: 'recording launches of 300 manifests',
    recorded: true,
    work: (store, _ids, keys) => store.recordManifestLaunches(new Map(keys.slice(0, 300).map((key) => [key, at(1)]))),
  },
];

describe.each<Engine>(['SQLite', 'PostgreSQL'])('the clean-up lets requests in on %s', (engine) => {
  it.each(WORK)('while $what', async ({ recorded, work }) => {
    const db = await migratedDatabase(engine);
    const store = new StorageStore(db);
    const imageId = await db.transaction((trx) =>
      insertBuiltImage(trx as unknown as Knex, {
        owner: 'ada',
        name: 'env',
        system: builtSystem(REGISTRY),
        builds: Array.from({ length: MANIFESTS }, (_, n) => ({ number: n + 1, digest: digest(n + 1), finishedAt: at(n) })),
      }),
    );
    if (recorded) await store.recordBuilds();
    const live = await store.liveManifests();
    const { answeredAfter, writes } = await answeredAmid(db, imageId, () =>
      work(
        store,
        live.map((m) => m.id),
        live.map((m) => `${m.repository}@${m.digest}`),
      ),
    );
    // Many statements (a chunk of 500 ids, 100 rows, or one launch each), and the request answered before the last.
    expect(writes).toBeGreaterThanOrEqual(MANIFESTS / 500);
    expect(answeredAfter).toBeLessThan(writes);
  });
});
