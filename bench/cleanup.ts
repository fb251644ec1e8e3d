/**
 * The clean-up at scale, against the real service behind a real hub and a
 * real registry (Debian's docker-registry on loopback): 10,000 built
 * manifests (100 images of 100 builds each, sharing a few layer blobs, each
 * with a config of its own), of which all but each image's newest are past
 * their retention. Measured: the clean-up's time from the admin's request to
 * its end (target: under a minute), and the launch API's p99 at 200
 * launches/s while it runs, against the same load just before and after it
 * in the same run (target: at most 1.5x, and within the launch budget of 10 ms).
 */
import { randomBytes } from 'node:crypto';
import { Agent, fetch as fetchWith } from 'undici';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase, type Knex } from '../server/store/db.js';
import { startHub } from '../test/support/hub.js';
import { pushBlob, pushManifest, sha256 } from '../test/support/images.js';
import { startRegistries } from '../test/support/registry.js';
import { builtSystem, insertBuiltImage } from '../test/support/storage.js';
import { SystemStore } from '../server/systems/store.js';
import { atFixedRate } from './launch.js';
import { percentile, type BenchRow } from './table.js';

const IMAGES = Number(process.env.BENCH_CLEANUP_IMAGES ?? 100);
const BUILDS = Number(process.env.BENCH_CLEANUP_BUILDS ?? 100);
const RATE = 200;
/** Seconds of launches at the fixed rate before and after the clean-up (the baseline). */
const BASELINE_SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const PUSHERS = 16;
/** Manifests a bare client deletes to measure the registry's own rate (the baseline). */
const SAMPLE = Number(process.env.BENCH_CLEANUP_SAMPLE ?? 500);

/** Runs `work` over `items`, `limit` at a time. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

/** Launches at a fixed rate until `done()` says stop; the latencies of all. */
async function launchesUntil(
  url: string,
  headers: Record<string, string>,
  done: () => boolean,
): Promise<{ p50: number; p99: number; errors: number; count: number }> {
  const latencies: number[] = [];
  let errors = 0;
  const pending: Array<Promise<void>> = [];
  const start = performance.now();
  for (let i = 0; !done(); i++) {
    const wait = start + (i * 1000) / RATE - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const sent = performance.now();
    pending.push(
      fetch(url, { headers })
        .then(async (res) => {
          await res.arrayBuffer();
          if (!res.ok) errors++;
          latencies.push(performance.now() - sent);
        })
        .catch(() => {
          errors++;
        }),
    );
  }
  await Promise.all(pending);
  return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), errors, count: latencies.length };
}

export async function benchCleanup(): Promise<BenchRow[]> {
  const registries = await startRegistries();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-bench-cleanup-'));
  const system = builtSystem(registries.open, { slug: 'bench', displayName: 'Bench', storage: undefined });
  const systemsFile = path.join(dir, 'systems.json');
  fs.writeFileSync(
    systemsFile,
    JSON.stringify([
      {
        slug: 'bench',
        displayName: 'Bench',
        allowedRegistries: [`${registries.open}/*`],
        mountPrefixes: ['/home/jovyan'],
        defaultMountPath: '/home/jovyan/work',
        spawner: 'kubernetes',
        enabled: true,
        buildPushTo: `${registries.open}/built`,
        buildRetentionDays: 0,
      },
    ]),
  );
  const hubPort = 18750;
  const hub = await startHub(hubPort, {
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile,
    CUSTOM_IMAGES_CLEANUP_MINUTES: '0',
    CUSTOM_IMAGES_LOG_LEVEL: 'warn',
  });
  let db: Knex | undefined;
  try {
    console.error(`bench: pushing ${IMAGES * BUILDS} manifests (${IMAGES} images of ${BUILDS} builds)…`);
    const shared = [randomBytes(50_000), randomBytes(30_000), randomBytes(10_000)];
    const pushed = new Map<number, Array<{ number: number; digest: string; finishedAt: Date }>>();
    const jobs: Array<{ image: number; build: number }> = [];
    for (let i = 0; i < IMAGES; i++) for (let k = 1; k <= BUILDS; k++) jobs.push({ image: i, build: k });
    const started = Date.now();
    const day = 86_400_000;
    // Every manifest names the same three layers and its repository's one config; an annotation of its own
    // makes it a manifest of its own, as builds of one image that changed a little are.
    const blobsOf = new Map<string, Promise<{ config: { mediaType: string; digest: string; size: number }; layers: unknown[] }>>();
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }),
    );
    const blobs = (repository: string) => {
      let found = blobsOf.get(repository);
      if (!found) {
        found = (async () => ({
          config: {
            mediaType: 'application/vnd.oci.image.config.v1+json',
            digest: await pushBlob(registries.open, repository, config),
            size: config.length,
          },
          layers: await Promise.all(
            shared.map(async (blob) => ({
              mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
              digest: await pushBlob(registries.open, repository, blob),
              size: blob.length,
            })),
          ),
        }))();
        blobsOf.set(repository, found);
      }
      return found;
    };
    const push = async (repository: string, tag: string, note: string): Promise<string> => {
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...(await blobs(repository)),
          annotations: { 'org.opencontainers.image.version': note },
        }),
      );
      await pushManifest(registries.open, repository, tag, 'application/vnd.oci.image.manifest.v1+json', manifest);
      return sha256(manifest);
    };
    await pool(jobs, PUSHERS, async ({ image, build }) => {
      const digest = await push(`built/u${image}/env`, String(build), `${image}/${build}`);
      const list = pushed.get(image) ?? [];
      list.push({ number: build, digest, finishedAt: new Date(started - (BUILDS - build + 1) * day) });
      pushed.set(image, list);
    });
    // The baseline: the registry's own rate of deleting manifests like these, sent by a bare client.
    const sample = Array.from({ length: SAMPLE }, (_, n) => n);
    const sampleDigests: string[] = [];
    await pool(sample, PUSHERS, async (n) => {
      sampleDigests.push(await push(`built/baseline${n % 10}/env`, String(n), `baseline/${n}`));
    });
    console.error(`bench: pushed in ${((Date.now() - started) / 1000).toFixed(0)} s; recording the builds…`);
    db = openDatabase(hub.databaseUrl);
    const stored = (await new SystemStore(db).get('bench')) ?? system;
    let launched = 0;
    for (let i = 0; i < IMAGES; i++) {
      const builds = (pushed.get(i) ?? []).sort((a, b) => a.number - b.number);
      const id = await db.transaction((trx) =>
        insertBuiltImage(trx as unknown as Knex, { owner: `u${i}`, name: 'env', system: stored, builds }),
      );
      if (i === 0) launched = id;
    }
    const launcher = { Authorization: `token ${hub.launchToken}` };
    const launchUrl = `http://127.0.0.1:${hubPort + 10}/services/custom-images/api/v1/users/u0/images/${launched}/launch`;
    const warm = await fetch(launchUrl, { headers: launcher });
    if (warm.status !== 200) throw new Error(`launch: ${warm.status} ${await warm.text()}`);
    const admin = { Authorization: `token ${await hub.userToken('admin')}` };
    const service = `http://127.0.0.1:${hubPort + 10}/services/custom-images/api/v1/`;

    console.error(`bench: launches at ${RATE}/s before the clean-up…`);
    await atFixedRate(launchUrl, launcher, RATE, 1);
    const before = await atFixedRate(launchUrl, launcher, RATE, BASELINE_SECONDS);

    console.error('bench: the clean-up, with launches at the same rate…');
    const t0 = performance.now();
    const queued = (await (await fetch(`${service}storage/cleanup`, { method: 'POST', headers: admin })).json()) as Array<{
      id: number;
      kind: string;
    }>;
    const runId = queued.find((r) => r.kind === 'registry')?.id;
    let run: Record<string, unknown> = {};
    let ended = false;
    const watch = new Agent({ connections: 1 });
    const watcher = (async () => {
      for (;;) {
        // Its own connection: the launches' queue must not hold up the question whether the run ended.
        run = await fetchWith(`${service}storage/cleanup/${runId}`, { headers: admin, dispatcher: watch })
          .then(async (res) => (await res.json()) as Record<string, unknown>)
          .catch(() => run);
        if (run.status === 'succeeded' || run.status === 'failed' || performance.now() - t0 > 600_000) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      ended = true;
    })();
    const during = await launchesUntil(launchUrl, launcher, () => ended);
    await watcher;
    const seconds = (performance.now() - t0) / 1000;
    const summary = run.summary as { deletedManifests?: number } | null;

    console.error(`bench: launches at ${RATE}/s after the clean-up…`);
    const after = await atFixedRate(launchUrl, launcher, RATE, BASELINE_SECONDS);
    console.error(`bench: ${SAMPLE} DELETEs by a bare client, 16 at a time (the registry's own rate)…`);
    const bare = performance.now();
    let nextSample = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (nextSample < sampleDigests.length) {
          const n = nextSample++;
          const res = await fetch(`http://${registries.open}/v2/built/baseline${n % 10}/env/manifests/${sampleDigests[n]}`, {
            method: 'DELETE',
          });
          await res.arrayBuffer();
        }
      }),
    );
    const perDelete = (performance.now() - bare) / 1000 / SAMPLE;
    const baseline = Math.max(before.p99, after.p99);
    const expectedDeleted = IMAGES * (BUILDS - 1);
    const deleted = summary?.deletedManifests ?? 0;
    const serverSeconds =
      typeof run.startedAt === 'string' && typeof run.finishedAt === 'string'
        ? (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000
        : NaN;
    return [
      {
        name: `clean-up: ${IMAGES * BUILDS} built manifests, ${expectedDeleted} deleted from the registry (request to end)`,
        value: seconds,
        unit: 's',
        baseline: 60,
        ratio: seconds / 60,
        target: '< 60 s',
        ok: seconds < 60 && run.status === 'succeeded' && deleted === expectedDeleted,
        note: `${run.status as string}, ${deleted} deleted; ${serverSeconds.toFixed(1)} s in the run itself (reading launches, recording and measuring manifests, deleting)`,
      },
      {
        name: `clean-up: its time / the same number of DELETEs by a bare client at the registry's own rate`,
        value: seconds,
        unit: 's',
        baseline: perDelete * expectedDeleted,
        ratio: seconds / (perDelete * expectedDeleted),
        target: '<= 1.5x',
        ok: seconds <= 1.5 * perDelete * expectedDeleted,
        note: `the registry deleted ${(1 / perDelete).toFixed(0)} manifests/s for the bare client (${SAMPLE} sampled)`,
      },
      {
        name: `launch API: p99 at ${RATE} launches/s while the clean-up runs / the same just before and after it (the worse)`,
        value: during.p99,
        unit: 'ms',
        baseline,
        ratio: during.p99 / baseline,
        target: '<= 1.5x',
        ok: during.p99 <= 1.5 * baseline || during.p99 <= 10,
        note: `p50 ${during.p50.toFixed(1)} ms over ${during.count} launches; before ${before.p99.toFixed(1)} ms, after ${after.p99.toFixed(1)} ms; errors ${during.errors + before.errors + after.errors}`,
      },
    ];
  } finally {
    await db?.destroy();
    await hub.stop();
    await registries.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
