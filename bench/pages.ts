/**
 * The form page: server render time (p50 over 2000 renders of the real
 * template through the app's view engine) and page weight with its assets;
 * and a repeated check of a digest already checked (served from the stored
 * result after one HEAD).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createApp } from '../server/app.js';
import { parseConfig } from '../server/config.js';
import { createHubClient } from '../server/hub/client.js';
import { createLogger } from '../server/log.js';
import { VIEWS_DIR } from '../server/paths.js';
import { RegistryClient } from '../server/registry/client.js';
import { createKeyring } from '../server/secrets/keyring.js';
import { openDatabase } from '../server/store/db.js';
import { migrateLatest } from '../server/store/migrate.js';
import { passingImage, pushImage } from '../test/support/images.js';
import { startRegistries } from '../test/support/registry.js';
import { WorkDir } from '../server/workDir.js';
import { checkServices } from '../test/support/checkServices.js';
import { testUser } from '../test/support/identities.js';
import { percentile, type BenchRow } from './table.js';

export async function benchPages(): Promise<BenchRow[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-bench-pages-'));
  const config = parseConfig({
    JUPYTERHUB_API_URL: 'http://127.0.0.1:9/hub/api',
    JUPYTERHUB_API_TOKEN: 'bench-token-0123456789',
    CUSTOM_IMAGES_DATABASE_URL: `sqlite://${dir}/db.sqlite`,
  });
  const db = openDatabase(config.databaseUrl);
  await migrateLatest(db);
  const keyring = await createKeyring([new Uint8Array(32).fill(3)]);
  const registries = await startRegistries();
  const registry = new RegistryClient({ trustedHosts: registries.trusted });
  const { app, close } = createApp({
    config,
    db,
    hub: createHubClient({ apiUrl: config.hub.apiUrl, apiToken: config.hub.apiToken }),
    logger: createLogger('silent'),
    keyring,
    registry,
    workDir: WorkDir.open(path.join(dir, 'work')),
  });
  try {
    const locals = {
      title: 'New custom image',
      action: `${config.service.prefix}images`,
      values: { name: '', system: 'default', image: '', registry: '', username: '', mountPath: '', removeCredentials: false },
      errors: {},
      systems: [{ ...config.defaultSystem, selected: true }],
      defaultMountPath: config.defaultSystem.defaultMountPath,
      mountPrefixes: config.defaultSystem.mountPrefixes.join(', '),
      csrfToken: 'x'.repeat(64),
      user: { name: 'ada', admin: false },
      prefix: config.service.prefix,
    };
    const render = () =>
      new Promise<string>((resolve, reject) =>
        app.render('pages/image-form', locals, (err, html) => (err ? reject(err) : resolve(html ?? ''))),
      );
    let html = '';
    for (let i = 0; i < 200; i++) html = await render();
    const times: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const t = performance.now();
      await render();
      times.push(performance.now() - t);
    }
    const p50 = percentile(times, 0.5);
    const assets = ['static/app.css'].map((f) => fs.statSync(path.join(VIEWS_DIR, f)).size);
    const weight = Buffer.byteLength(html) + assets.reduce((a, b) => a + b, 0);

    // A repeated check of a digest checked before: one HEAD and a lookup.
    await pushImage(registries.open, 'bench/again', '1', passingImage());
    const services = checkServices(db, { registry, keyring });
    const { images } = services;
    const checks = services.checks({ runLimits: config.checks.run, deadlineMs: config.checks.deadlineMs });
    const ada = testUser('ada');
    const image = await images.create(ada, 'ada', { system: 'default', image: `${registries.open}/bench/again:1` });
    const runOnce = async () => {
      const job = await checks.request(ada, 'ada', image.id);
      const t = performance.now();
      await services.run(checks, job.id, 'bench');
      return performance.now() - t;
    };
    const firstMs = await runOnce();
    const repeats: number[] = [];
    for (let i = 0; i < 20; i++) repeats.push(await runOnce());
    const repeatedMs = percentile(repeats, 0.5);
    return [
      {
        name: 'form page: server render p50 (budget 5 ms)',
        value: p50,
        unit: 'ms',
        baseline: 5,
        ratio: p50 / 5,
        target: '<= 5 ms',
        ok: p50 <= 5,
      },
      {
        name: 'form page: weight with its assets (budget 50 KB)',
        value: weight / 1000,
        unit: 'kB',
        baseline: 50,
        ratio: weight / 50_000,
        target: '<= 50 KB',
        ok: weight <= 50_000,
      },
      {
        name: 'repeated check of the same digest, from the stored result (p50; baseline: the first check)',
        value: repeatedMs,
        unit: 'ms',
        baseline: firstMs,
        ratio: repeatedMs / 20,
        target: '<= 20 ms',
        ok: repeatedMs <= 20,
      },
    ];
  } finally {
    close();
    await db.destroy();
    await registries.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
