/**
 * The launch's one joined read answers what each feature's store answers for
 * its own table: a column one store reads but the launch does not select (or
 * the other way round) fails here. On SQLite and PostgreSQL.
 */
import { describe, expect, it } from 'vitest';
import { CheckStore } from '../../server/checks/store.js';
import { ImageStore } from '../../server/images/store.js';
import { LaunchStore } from '../../server/launch/store.js';
import { SystemStore } from '../../server/systems/store.js';
import { migratedDatabase, type Engine } from '../support/database.js';
import { testSystem } from '../support/systems.js';

describe.each<Engine>(['SQLite', 'PostgreSQL'])('the launch read on %s', (kind) => {
  it("reads each table as that table's own store does", async () => {
    const db = await migratedDatabase(kind);
    const now = new Date('2026-12-01T10:00:00.000Z');
    const systemStore = new SystemStore(db);
    await systemStore.insert(
      testSystem({
        slug: 'dock',
        displayName: 'Docker hosts',
        policy: { runCheck: true, uid: 1200, uidMax: 1300, gid: 50, requireUser: true, requirePip: true, python: { min: '3.9' } },
      }),
      now,
    );
    const sealed = { ciphertext: new Uint8Array([1, 2, 3]), nonce: new Uint8Array([4, 5]), keyId: 'k1' };
    await systemStore.putCredential(
      { id: 'site-1', pattern: 'registry.example.com/*', username: 'site', updatedBy: 'admin', ...sealed },
      now,
    );
    await systemStore.putCredential(
      { id: 'site-2', pattern: 'registry.example.com/lab/*', username: 'lab', updatedBy: 'admin', ...sealed },
      now,
    );
    await systemStore.putCredential(
      { id: 'site-3', pattern: 'other.example.com/*', username: 'other', updatedBy: 'admin', ...sealed },
      now,
    );
    const imageStore = new ImageStore(db);
    const id = await imageStore.insert(
      {
        owner: 'ada',
        name: 'env',
        system: 'dock',
        referenceInput: 'registry.example.com/lab/env:1',
        reference: 'registry.example.com/lab/env:1',
        registry: 'registry.example.com',
        mountPath: '/home/jovyan/data',
      },
      now,
    );
    await imageStore.putCredential(
      { id: 'cred-1', imageId: id, owner: 'ada', registry: 'registry.example.com', username: 'ada', ...sealed },
      now,
    );
    const checkStore = new CheckStore(db);
    const checkId = await checkStore.insert({
      imageId: id,
      owner: 'ada',
      system: 'dock',
      reference: 'registry.example.com/lab/env:1',
      repository: 'registry.example.com/lab/env',
      access: 'credential:abc',
      digest: `sha256:${'a'.repeat(64)}`,
      manifestDigest: `sha256:${'b'.repeat(64)}`,
      platform: 'linux/amd64',
      policyHash: 'hash',
      kind: 'full',
      status: 'passed',
      findings: [{ code: 'run.version', level: 'info', message: 'ok' }],
      facts: null,
      log: 'a long log\n',
      progress: { phase: 'done', message: 'passed', layersDone: 1, layersTotal: 1, bytesRead: 1, bytesTotal: 1 },
      reusedFrom: null,
      createdAt: now,
      startedAt: now,
      finishedAt: now,
      durationMs: 1234,
    });

    const launch = (await new LaunchStore(db).load(id))!;
    expect(launch.image).toEqual(await imageStore.get('ada', id));
    expect(launch.credential).toEqual(await imageStore.credentialFor('ada', id));
    // All of the check but its log and progress.
    expect(launch.check).toEqual({ ...(await checkStore.get(checkId)), log: '', progress: null });
    expect(launch.system).toEqual(await systemStore.get('dock'));
    const sites = (await systemStore.credentials()).filter((c) => c.pattern.startsWith('registry.example.com'));
    expect([...launch.siteCredentials].sort((a, b) => a.id.localeCompare(b.id))).toEqual(sites.sort((a, b) => a.id.localeCompare(b.id)));
    // Whose it is: the launch decides who may use it.
    expect(launch.image.owner).toBe('ada');
    expect(await new LaunchStore(db).load(id + 1000)).toBeUndefined();
  });
});
