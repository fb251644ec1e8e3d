/**
 * `custom-images rotate-keys` on a real SQLite file: secrets sealed under an
 * old key still open after rotation with a new first key, and then open with
 * the old key removed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { testAccess, testUser } from '../support/identities.js';
import { ImageService } from '../../server/images/service.js';
import { ImageStore } from '../../server/images/store.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import { staticCatalog, type System } from '../../server/systems/schema.js';
import { testSystem } from '../support/systems.js';

const system: System = testSystem();
const key = (fill: number) => Buffer.alloc(32, fill).toString('base64');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-rotate-'));
const url = `sqlite://${dir}/db.sqlite`;

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], cryptKey: string) {
  return spawnSync(process.execPath, [path.resolve('dist/server/cli.js'), ...args], {
    env: { PATH: process.env.PATH, CUSTOM_IMAGES_DATABASE_URL: url, CUSTOM_IMAGES_CRYPT_KEY: cryptKey },
    encoding: 'utf8',
  });
}

async function serviceWith(keys: string[]) {
  const db = openDatabase(url);
  const keyring = await createKeyring(keys.map((k) => new Uint8Array(Buffer.from(k, 'base64'))));
  return { db, service: new ImageService({ store: new ImageStore(db), access: testAccess, systems: staticCatalog([system]), keyring }) };
}

describe('rotate-keys', () => {
  it('re-seals with the new first key so that the old key can go', async () => {
    const ada = testUser('ada');
    const old = await serviceWith([key(1)]);
    await migrateLatest(old.db);
    const ids: number[] = [];
    for (const n of [1, 2, 3]) {
      const image = await old.service.create(ada, 'ada', {
        system: 'default',
        image: `ada/img${n}:1`,
        username: 'ada',
        password: `secret-${n}`,
      });
      ids.push(image.id);
    }
    await old.db.destroy();

    // The new key first, the old one after: everything still opens.
    const both = await serviceWith([key(2), key(1)]);
    expect(await both.service.openCredential('ada', ids[0]!)).toMatchObject({ password: 'secret-1' });
    await both.db.destroy();

    const rotated = cli(['rotate-keys'], `${key(2)};${key(1)}`);
    expect(rotated.stderr).toBe('');
    expect(rotated.status).toBe(0);
    expect(rotated.stdout).toContain('re-sealed 3 secret(s)');
    expect(cli(['rotate-keys'], `${key(2)};${key(1)}`).stdout).toContain('re-sealed 0 secret(s) with the first key; 3 already used it');

    // The old key removed: the secrets open with the new key alone.
    const onlyNew = await serviceWith([key(2)]);
    for (const [i, id] of ids.entries()) {
      expect(await onlyNew.service.openCredential('ada', id)).toMatchObject({ password: `secret-${i + 1}` });
    }
    await onlyNew.db.destroy();
  });

  it('says what to do when no key is set', () => {
    const result = cli(['rotate-keys'], '');
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('CUSTOM_IMAGES_CRYPT_KEY is not set');
  });
});
