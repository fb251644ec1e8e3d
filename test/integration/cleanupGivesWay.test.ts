/**
 * The clean-up gives way to launches: while someone waits for their server
 * (a launch came within the last moments), it sends one registry request at
 * a time, and it runs wide again once launches stop. Real registry (Debian's
 * docker-registry) behind a proxy that counts the requests it has open.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HubIdentity } from '../../server/hub/identity.js';
import { Foreground } from '../../server/jobs/foreground.js';
import { RegistryClient } from '../../server/registry/client.js';
import { createKeyring, type Keyring } from '../../server/secrets/keyring.js';
import { DEFAULT_STORAGE } from '../../server/systems/storage.js';
import { SystemStore } from '../../server/systems/store.js';
import { migratedDatabase } from '../support/database.js';
import { pushImage } from '../support/images.js';
import { scriptedProxy, startRegistries, type TestRegistries } from '../support/registry.js';
import { builtSystem, insertBuiltImage, storageServices } from '../support/storage.js';

const admin: HubIdentity = { kind: 'user', name: 'root', admin: true, groups: [], scopes: ['access:services'] };
const DAY = 86_400_000;

let registries: TestRegistries;
let keyring: Keyring;

beforeAll(async () => {
  registries = await startRegistries();
  keyring = await createKeyring([new Uint8Array(32).fill(5)]);
}, 120_000);

afterAll(async () => {
  await registries?.stop();
});

/** Runs one clean-up of 4 images of 6 builds (20 superseded) through a counting proxy; the most DELETEs open at once. */
async function peakDeletes(prefix: string, foreground: Foreground, whileRunning: () => void): Promise<{ peak: number; deleted: number }> {
  const db = await migratedDatabase('SQLite');
  const proxy = await scriptedProxy(registries.open, () => 'pass');
  try {
    const system = builtSystem(proxy.host, { storage: { ...DEFAULT_STORAGE, buildRetentionDays: 0 } });
    await new SystemStore(db).insert(system, new Date(Date.now() - 10 * DAY));
    for (let u = 0; u < 4; u++) {
      const owner = `${prefix}${u}`;
      const builds = [];
      for (let k = 1; k <= 6; k++) {
        const image = await pushImage(registries.open, `built/${owner}/env`, String(k), {
          layers: [{ files: { '/data': randomBytes(500).toString('base64') } }],
        });
        builds.push({ number: k, digest: image.digest, finishedAt: new Date(Date.now() - (7 - k) * 3600_000) });
      }
      await insertBuiltImage(db, { owner, name: 'env', system, builds });
    }
    const registry = new RegistryClient({ trustedHosts: [proxy.host] });
    const storage = storageServices(db, { registry, keyring, now: () => new Date(), foreground });
    const [run] = await storage.service.requestRun(admin);
    whileRunning();
    const launches = setInterval(whileRunning, 50);
    try {
      const ended = await storage.worker.runNow(run!.id);
      expect(ended?.status).toBe('succeeded');
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

describe('the clean-up and launches', () => {
  it('sends one registry request at a time while launches come, and runs wide when none do', async () => {
    const launching = new Foreground();
    const busy = await peakDeletes('busy', launching, () => launching.noteRequest());
    expect(busy.deleted).toBe(20);
    expect(busy.peak).toBe(1);

    const idle = await peakDeletes('idle', new Foreground(), () => undefined);
    expect(idle.deleted).toBe(20);
    expect(idle.peak).toBeGreaterThan(1);
  }, 300_000);
});

describe('Foreground', () => {
  it('is busy for a while after a launch, then idle again', () => {
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
