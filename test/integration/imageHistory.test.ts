/**
 * An image's history, read from the audit log alone: every entry about it
 * has the target image/<id>, says who did it, and an update names the fields
 * it changed (and never a secret). On real SQLite and PostgreSQL, with the
 * services wired as the app wires them.
 */
import { describe, expect, it } from 'vitest';
import { RegistryClient } from '../../server/registry/client.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { ImageHistory } from '../../server/images/history.js';
import { ImageStore } from '../../server/images/store.js';
import { AppError } from '../../server/errors.js';
import { checkServices } from '../support/checkServices.js';
import { migratedDatabase, type Engine } from '../support/database.js';
import { testAccess, testUser } from '../support/identities.js';

const PASSWORD = 'history-secret-7f3a';

interface AuditRow {
  actor: string;
  actor_kind: string;
  action: string;
  target_type: string;
  target_id: string;
  details: string | Record<string, unknown>;
}

const detailsOf = (row: AuditRow) => (typeof row.details === 'string' ? (JSON.parse(row.details) as Record<string, unknown>) : row.details);

describe.each<Engine>(['SQLite', 'PostgreSQL'])('an image history from the audit log on %s', (engine) => {
  it('names who created, changed (which fields), checked and deleted the image, under its target', async () => {
    const db = await migratedDatabase(engine);
    const keyring = await createKeyring([new Uint8Array(32).fill(3)]);
    const services = checkServices(db, { registry: new RegistryClient({}), keyring });
    const checks = services.checks();
    const ada = testUser('ada');
    const saved = {
      system: 'default',
      name: 'env',
      image: 'registry.example.org/lab/env:1',
      registry: 'registry.example.org',
      username: 'ada',
      password: PASSWORD,
    };

    const image = await services.images.create(ada, 'ada', saved);
    // The same fields again, the password left blank (kept): nothing changed.
    await services.images.update(ada, 'ada', image.id, { ...saved, password: '' });
    await services.images.update(ada, 'ada', image.id, { ...saved, password: '', name: 'env2', mountPath: '/home/jovyan/data' });
    await services.images.update(ada, 'ada', image.id, {
      ...saved,
      name: 'env2',
      mountPath: '/home/jovyan/data',
      username: 'ada2',
      password: '',
    });
    await services.images.update(ada, 'ada', image.id, {
      ...saved,
      name: 'env2',
      mountPath: '/home/jovyan/data',
      image: 'registry.example.org/lab/env:2',
      password: 'another-secret',
    });
    await checks.request(ada, 'ada', image.id);
    // A build's check: no caller, the service itself.
    await checks.queue('ada', image.id);
    await services.images.remove(ada, 'ada', image.id);

    const rows = (await db('audit')
      .where({ target_type: 'image', target_id: String(image.id) })
      .orderBy('id')) as AuditRow[];
    expect(rows.map((r) => [r.action, r.actor, r.actor_kind])).toEqual([
      ['image.create', 'ada', 'user'],
      ['image.update', 'ada', 'user'],
      ['image.update', 'ada', 'user'],
      ['image.update', 'ada', 'user'],
      ['image.update', 'ada', 'user'],
      ['image.check', 'ada', 'user'],
      ['image.check', 'custom-images', 'service'],
      ['image.delete', 'ada', 'user'],
    ]);
    const updates = rows.filter((r) => r.action === 'image.update').map((r) => detailsOf(r).changed);
    expect(updates).toEqual([[], ['name', 'mountPath'], ['credential'], ['image', 'credential']]);
    const checked = rows.filter((r) => r.action === 'image.check').map(detailsOf);
    expect(checked.map((d) => d.reference)).toEqual(['registry.example.org/lab/env:2', 'registry.example.org/lab/env:2']);
    for (const row of rows) {
      expect(JSON.stringify(row)).not.toContain(PASSWORD);
      expect(JSON.stringify(row)).not.toContain('another-secret');
    }
    await db.destroy();
  });

  it("reads an image's history newest first, with the description among the fields changed; another user's is a 404", async () => {
    const db = await migratedDatabase(engine);
    const keyring = await createKeyring([new Uint8Array(32).fill(3)]);
    const services = checkServices(db, { registry: new RegistryClient({}), keyring });
    const history = new ImageHistory({ access: testAccess, store: new ImageStore(db) });
    const ada = testUser('ada');
    const saved = { system: 'default', name: 'env', image: 'registry.example.org/lab/env:1' };
    const image = await services.images.create(ada, 'ada', { ...saved, description: 'First words' });
    await services.images.update(ada, 'ada', image.id, { ...saved, description: '<b>Other</b> words' });
    await services.checks().request(ada, 'ada', image.id);
    // Another image's entries are not this one's.
    await services.images.create(ada, 'ada', { ...saved, name: 'other' });

    const entries = await history.of(ada, 'ada', image.id);
    expect(entries.map((e) => [e.event, e.by, e.byKind])).toEqual([
      ['checked', 'ada', 'user'],
      ['modified', 'ada', 'user'],
      ['created', 'ada', 'user'],
    ]);
    expect(entries[1]?.changed).toEqual(['description']);
    expect(entries.every((e, i) => i === 0 || e.at.getTime() <= entries[i - 1]!.at.getTime())).toBe(true);
    expect((await services.images.get(ada, 'ada', image.id)).description).toBe('<b>Other</b> words');
    for (const [who, owner] of [
      [testUser('bob'), 'ada'],
      [testUser('bob'), 'bob'],
    ] as const) {
      const err = await history.of(who, owner, image.id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).status).toBe(404);
    }
    await db.destroy();
  });
});
