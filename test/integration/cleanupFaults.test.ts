/**
 * The clean-up when things go wrong, on real parts: a registry (Debian's
 * docker-registry behind a proxy the test scripts) that loses the answer to
 * one DELETE and then fails every DELETE half-way through a run; and two
 * replicas (two workers with their own connections) on one PostgreSQL.
 * Nothing is deleted twice, every deletion is audited once, the next run
 * resumes what the failed one left, and a due run runs once. And a run
 * that meets launches gives way: one registry request at a time while
 * someone waits for their server, wide again once launches stop.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HubIdentity } from '../../server/hub/identity.js';
import { ImageHistory } from '../../server/images/history.js';
import { ImageStore } from '../../server/images/store.js';
import { Foreground } from '../../server/jobs/foreground.js';
import { RegistryClient } from '../../server/registry/client.js';
import { createKeyring, type Keyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import type { System } from '../../server/systems/schema.js';
import { DEFAULT_STORAGE } from '../../server/systems/storage.js';
import { SystemStore } from '../../server/systems/store.js';
import { migratedDatabase } from '../support/database.js';
import { testAccess, testUser } from '../support/identities.js';
import { pushImage } from '../support/images.js';
import { createTestDatabase } from '../support/postgres.js';
import { scriptedProxy, startRegistries, type ProxyAction, type TestRegistries } from '../support/registry.js';
import { builtSystem, insertBuiltImage, storageServices } from '../support/storage.js';

const admin: HubIdentity = { kind: 'user', name: 'root', admin: true, groups: [], scopes: ['access:services'] };
const DAY = 86_400_000;

let registries: TestRegistries;
let keyring: Keyring;

beforeAll(async () => {
  registries = await startRegistries();
  keyring = await createKeyring([new Uint8Array(32).fill(3)]);
}, 120_000);

afterAll(async () => {
  await registries?.stop();
});

interface Seeded {
  /** Every manifest pushed: repository path (without the host) and digest, and whether the rules delete it. */
  manifests: Array<{ repository: string; digest: string; goes: boolean }>;
}

/**
 * `users` users with one image of `builds` builds each, pushed to the real
 * registry; the system names them through `host` (the proxy) and deletes
 * superseded builds at once (retention 0).
 */
async function seed(db: Knex, host: string, prefix: string, users: number, builds: number): Promise<{ system: System } & Seeded> {
  const system = builtSystem(host, { storage: { ...DEFAULT_STORAGE, buildRetentionDays: 0 } });
  await new SystemStore(db).insert(system, new Date(Date.now() - 10 * DAY));
  const manifests: Seeded['manifests'] = [];
  for (let u = 0; u < users; u++) {
    const owner = `${prefix}${u}`;
    const repository = `built/${owner}/env`;
    const pushed = [];
    for (let k = 1; k <= builds; k++) {
      const image = await pushImage(registries.open, repository, String(k), {
        layers: [{ files: { '/data': randomBytes(2000).toString('base64') } }],
      });
      pushed.push({ number: k, digest: image.digest, finishedAt: new Date(Date.now() - (builds - k + 1) * 3600_000) });
      manifests.push({ repository, digest: image.digest, goes: k < builds });
    }
    await insertBuiltImage(db, { owner, name: 'env', system, builds: pushed });
  }
  return { system, manifests };
}

/** Whether the registry itself (not the proxy) serves the manifest. */
async function inRegistry(repository: string, digest: string): Promise<boolean> {
  const res = await fetch(`http://${registries.open}/v2/${repository}/manifests/${digest}`, {
    method: 'HEAD',
    headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  return res.ok;
}

/** DELETEs of `digest` that the registry carried out: answered 202, or done with the answer dropped. */
function deletionsOf(log: Array<{ method: string; url: string; status: number }>, dropped: Set<string>, digest: string): number {
  return log.filter(
    (e) => e.method === 'DELETE' && e.url.endsWith(`/manifests/${digest}`) && (e.status === 202 || (dropped.has(digest) && e.status === 0)),
  ).length;
}

describe('a registry that fails half-way', () => {
  it('deletes nothing twice, audits each deletion once, and the next run resumes', async () => {
    const db = await migratedDatabase('SQLite');
    const dropped = new Set<string>();
    const proxy = await scriptedProxy(registries.open, () => 'pass');
    try {
      const { manifests } = await seed(db, proxy.host, 'fault', 5, 6);
      // The first DELETE is carried out but its answer lost (the client asks again: 404, done);
      // from the seventh on, every DELETE fails with 503 until the registry is back.
      proxy.setScript(({ method, url }, n): ProxyAction => {
        if (method !== 'DELETE') return 'pass';
        if (n === 1) {
          dropped.add(url.slice(url.lastIndexOf('/') + 1));
          return 'drop-answer';
        }
        return n <= 6 ? 'pass' : { status: 503 };
      });
      const registry = new RegistryClient({ trustedHosts: [proxy.host], attempts: 2, sleep: async () => undefined });
      const storage = storageServices(db, { registry, keyring, now: () => new Date() });

      const [first] = await storage.service.requestRun(admin);
      const failed = await storage.worker.runNow(first!.id);
      expect(failed?.status).toBe('failed');
      expect(failed?.message).toMatch(/registry .* failed half-way|has a problem \(HTTP 503\)/);
      const goes = manifests.filter((m) => m.goes);
      const gone = new Set<string>();
      for (const m of goes) if (!(await inRegistry(m.repository, m.digest))) gone.add(m.digest);
      expect(gone.size).toBeGreaterThan(0);
      expect(gone.size).toBeLessThan(goes.length);
      // Recorded before: every manifest the registry lost was taken by the run first. Recorded after: only
      // what the registry confirmed is marked deleted, and audited; one whose answer was lost waits, taken.
      const rows = (await db('built_manifests').select('digest', 'status')) as Array<{ digest: string; status: string }>;
      const recorded = rows.filter((r) => r.status === 'deleted').map((r) => r.digest);
      for (const digest of recorded) expect(gone.has(digest)).toBe(true);
      for (const digest of gone) expect(rows.find((r) => r.digest === digest)?.status).toMatch(/^(deleted|deleting)$/);
      expect(await db('audit').where({ action: 'storage.manifest.delete' }).count({ n: '*' })).toEqual([{ n: recorded.length }]);
      expect(rows.filter((r) => r.status === 'deleting').length).toBeGreaterThan(0);

      // The registry is back: the next run resumes, and the manifests the failed run was deleting go too.
      proxy.setScript(() => 'pass');
      const [second] = await storage.service.requestRun(admin);
      expect(await storage.worker.runNow(second!.id)).toMatchObject({ status: 'succeeded' });
      for (const m of manifests) expect(await inRegistry(m.repository, m.digest)).toBe(!m.goes);
      for (const m of goes) expect(deletionsOf(proxy.log, dropped, m.digest)).toBe(1);
      const audited = (
        (await db('audit').where({ action: 'storage.manifest.delete' }).select('details')) as Array<{ details: string }>
      ).map((e) => (JSON.parse(e.details) as { manifest: string }).manifest);
      expect(audited.length).toBe(goes.length);
      expect(new Set(audited)).toEqual(new Set(goes.map((m) => `${proxy.host}/${m.repository}@${m.digest}`)));
      expect(await db('built_manifests').where({ status: 'deleting' }).count({ n: '*' })).toEqual([{ n: 0 }]);

      // Each image's history says which of its builds the clean-up deleted, once each, and why.
      const image = (await db('images').where({ owner: 'fault0' }).first('id')) as { id: number };
      const history = await new ImageHistory({ access: testAccess, store: new ImageStore(db) }).of(testUser('fault0'), 'fault0', image.id);
      const deletedBuilds = history.filter((e) => e.event === 'deleted from the registry');
      expect(deletedBuilds.map((e) => e.build).sort()).toEqual([1, 2, 3, 4, 5]);
      expect(deletedBuilds.every((e) => e.by === deletedBuilds[0]?.by && e.reason !== undefined)).toBe(true);
    } finally {
      await proxy.stop();
    }
  }, 300_000);
});

describe('two replicas on one PostgreSQL', () => {
  it('run a due clean-up once', async () => {
    const created = await createTestDatabase();
    const first = openDatabase(created.url);
    const second = openDatabase(created.url);
    const proxy = await scriptedProxy(registries.open, () => 'pass');
    const workers: Array<{ stop(): Promise<void> }> = [];
    try {
      await migrateLatest(first);
      const { manifests } = await seed(first, proxy.host, 'replica', 4, 4);
      const registry = () => new RegistryClient({ trustedHosts: [proxy.host] });
      // Two replicas: each its own connections, registry client and worker, due every hour. They start
      // within an hour's period, run nothing at start, and both find the next period due when it begins.
      let shift = 0;
      const now = () => new Date(Date.now() + shift);
      for (const db of [first, second]) {
        const storage = storageServices(db, { registry: registry(), keyring, now, everyMs: 3600_000, pollMs: 100 });
        storage.worker.start();
        workers.push(storage.worker);
      }
      await new Promise((r) => setTimeout(r, 1000));
      expect(await first('cleanup_runs').count({ n: '*' })).toEqual([{ n: '0' }]);
      shift = 3600_000;
      const deadline = Date.now() + 120_000;
      for (;;) {
        const ended = await first('cleanup_runs').where({ kind: 'registry' }).whereIn('status', ['succeeded', 'failed']).first();
        if (ended) break;
        if (Date.now() > deadline) throw new Error('no clean-up ran');
        await new Promise((r) => setTimeout(r, 200));
      }
      await Promise.all(workers.map((w) => w.stop()));
      const runs = (await first('cleanup_runs').where({ kind: 'registry' })) as Array<{ status: string; slot: string | null }>;
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ status: 'succeeded' });
      expect(runs[0]?.slot).toMatch(/^registry:3600000:\d+$/);
      const goes = manifests.filter((m) => m.goes);
      for (const m of manifests) expect(await inRegistry(m.repository, m.digest)).toBe(!m.goes);
      // One DELETE per manifest reached the registry, none was sent again.
      const deletes = proxy.log.filter((e) => e.method === 'DELETE');
      expect(deletes.map((e) => e.status)).toEqual(goes.map(() => 202));
      expect(new Set(deletes.map((e) => e.url)).size).toBe(goes.length);
      expect(await first('audit').where({ action: 'storage.manifest.delete' }).count({ n: '*' })).toEqual([{ n: String(goes.length) }]);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await proxy.stop();
      await first.destroy();
      await second.destroy();
      await created.drop();
    }
  }, 300_000);
});

describe('launches while a clean-up runs', () => {
  /** One clean-up of 4 images of 6 builds (20 superseded) through a counting proxy; the most DELETEs open at once. */
  async function peakDeletes(prefix: string, foreground: Foreground, whileRunning: () => void): Promise<{ peak: number; deleted: number }> {
    const db = await migratedDatabase('SQLite');
    const proxy = await scriptedProxy(registries.open, () => 'pass');
    try {
      await seed(db, proxy.host, prefix, 4, 6);
      const registry = new RegistryClient({ trustedHosts: [proxy.host] });
      const storage = storageServices(db, { registry, keyring, now: () => new Date(), foreground });
      const [run] = await storage.service.requestRun(admin);
      whileRunning();
      const launches = setInterval(whileRunning, 50);
      try {
        expect(await storage.worker.runNow(run!.id)).toMatchObject({ status: 'succeeded' });
      } finally {
        clearInterval(launches);
      }
      const deleted = proxy.log.filter((e) => e.method === 'DELETE' && e.status === 202).length;
      return { peak: proxy.peak.get('DELETE') ?? 0, deleted };
    } finally {
      await proxy.stop();
      await db.destroy();
    }
  }

  it('sends one registry request at a time while launches come, and runs wide when none do', async () => {
    const launching = new Foreground();
    const busy = await peakDeletes('busy', launching, () => launching.noteRequest());
    expect(busy).toEqual({ deleted: 20, peak: 1 });

    const idle = await peakDeletes('idle', new Foreground(), () => undefined);
    expect(idle.deleted).toBe(20);
    expect(idle.peak).toBeGreaterThan(1);
  }, 300_000);

  it('counts as busy for a while after a launch, then idle again', () => {
    let now = 0;
    const foreground = new Foreground(2000, () => now);
    expect(foreground.busy()).toBe(false);
    foreground.noteRequest();
    now = 1999;
    expect(foreground.busy()).toBe(true);
    now = 2000;
    expect(foreground.busy()).toBe(false);
  });
});
