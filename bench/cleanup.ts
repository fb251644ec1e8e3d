/**
 * The clean-up at scale, against the real service behind a real hub and a
 * real registry (Debian's docker-registry on loopback). Two sets of built
 * images, each build a manifest of its own (an annotation of its own) over a
 * few shared layer blobs and a config per repository; every build but each
 * image's newest is superseded and past its retention:
 *
 * 1. 10,000 manifests (100 images of 100 builds) cleaned up alone: the time
 *    from the admin's request to the run's end (target: under a minute), and
 *    against the registry's own rate of deletes for a bare client sending the
 *    same requests 16 at a time, measured in the same run (the service adds
 *    its bookkeeping: recording, the rules, the audit log).
 * 2. A second set (2,000 manifests), pushed after the first clean-up and
 *    cleaned up while the launch API gets 200 launches/s: its p99 then,
 *    against the same load just before and after (the worse of the two).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Agent, fetch as fetchWith } from 'undici';
import { openDatabase, type Knex } from '../server/store/db.js';
import { SystemStore } from '../server/systems/store.js';
import { startHub } from '../test/support/hub.js';
import { pushBlob, pushManifest, sha256 } from '../test/support/images.js';
import { startRegistries } from '../test/support/registry.js';
import { insertBuiltImage } from '../test/support/storage.js';
import { atFixedRate } from './launch.js';
import { percentile, type BenchRow } from './table.js';

const IMAGES = Number(process.env.BENCH_CLEANUP_IMAGES ?? 100);
const BUILDS = Number(process.env.BENCH_CLEANUP_BUILDS ?? 100);
/** Images (of BUILDS builds) of the set cleaned up under launches. */
const LOADED_IMAGES = Number(process.env.BENCH_CLEANUP_LOADED_IMAGES ?? 20);
const RATE = 200;
/** Seconds of launches at the fixed rate before and after the clean-up (the baseline). */
const BASELINE_SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
/** Manifests a bare client deletes to measure the registry's own rate (the baseline). */
const SAMPLE = Number(process.env.BENCH_CLEANUP_SAMPLE ?? 500);
/**
 * The sample's repositories, each with as many tags as a cleaned-up image
 * has builds: the filesystem driver reads every tag of a repository to untag
 * a deleted manifest, so a delete costs more the more tags its repository has.
 */
const SAMPLE_REPOSITORIES = Math.max(1, Math.round(SAMPLE / BUILDS));
const WIDTH = 16;
const DAY = 86_400_000;

/** Runs `work` over `items`, `limit` at a time. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

/** Launches at a fixed rate (open loop) until `done()` says stop; the latencies of all. */
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
  const systemsFile = path.join(dir, 'systems.json');
  const system = (slug: string, retention: number) => ({
    slug,
    displayName: slug,
    allowedRegistries: [`${registries.open}/*`],
    mountPrefixes: ['/home/jovyan'],
    defaultMountPath: '/home/jovyan/work',
    spawner: 'kubernetes',
    enabled: true,
    buildPushTo: `${registries.open}/${slug}`,
    buildRetentionDays: retention,
  });
  // Both delete superseded builds at once; "loaded" is filled after the first clean-up, for the second.
  fs.writeFileSync(systemsFile, JSON.stringify([system('alone', 0), system('loaded', 0)]));
  const hubPort = 18750;
  const hub = await startHub(hubPort, {
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile,
    CUSTOM_IMAGES_CLEANUP_MINUTES: '0',
    CUSTOM_IMAGES_LOG_LEVEL: 'warn',
  });
  let db: Knex | undefined;
  const watch = new Agent({ connections: 1 });
  try {
    // Every manifest names the same three layers and its repository's one config; an annotation of its own
    // makes it a manifest of its own, as builds of one image that changed a little are.
    const shared = [randomBytes(50_000), randomBytes(30_000), randomBytes(10_000)];
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }),
    );
    const blobsOf = new Map<string, Promise<Record<string, unknown>>>();
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
    const push = async (repository: string, tag: string): Promise<string> => {
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...(await blobs(repository)),
          annotations: { 'org.opencontainers.image.version': `${repository}:${tag}` },
        }),
      );
      await pushManifest(registries.open, repository, tag, 'application/vnd.oci.image.manifest.v1+json', manifest);
      return sha256(manifest);
    };
    db = openDatabase(hub.databaseUrl);
    const stored = new SystemStore(db);
    /** Pushes `images` images of BUILDS builds to a system's push path and records them as builds leave them; the first image's id. */
    const seed = async (slug: string, images: number): Promise<number> => {
      const target = await stored.get(slug);
      if (!target) throw new Error(`no system ${slug}`);
      const started = Date.now();
      const jobs = Array.from({ length: images * BUILDS }, (_, n) => ({ image: Math.floor(n / BUILDS), build: (n % BUILDS) + 1 }));
      const pushed = new Map<number, Array<{ number: number; digest: string; finishedAt: Date }>>();
      await pool(jobs, WIDTH, async ({ image, build }) => {
        const digest = await push(`${slug}/u${image}/env`, String(build));
        const list = pushed.get(image) ?? [];
        list.push({ number: build, digest, finishedAt: new Date(started - (BUILDS - build + 1) * DAY) });
        pushed.set(image, list);
      });
      let first = 0;
      for (let i = 0; i < images; i++) {
        const builds = (pushed.get(i) ?? []).sort((a, b) => a.number - b.number);
        const id = await db!.transaction((trx) =>
          insertBuiltImage(trx as unknown as Knex, { owner: `u${i}`, name: 'env', system: target, builds }),
        );
        if (i === 0) first = id;
      }
      console.error(
        `bench: ${images * BUILDS} manifests on ${slug} pushed and recorded in ${((Date.now() - started) / 1000).toFixed(0)} s`,
      );
      return first;
    };
    console.error(`bench: pushing ${(IMAGES + LOADED_IMAGES) * BUILDS} manifests and ${SAMPLE} for the baseline…`);
    await seed('alone', IMAGES);
    const sampleDigests: string[] = [];
    await pool(
      Array.from({ length: SAMPLE }, (_, n) => n),
      WIDTH,
      async (n) => {
        sampleDigests[n] = await push(`baseline/r${n % SAMPLE_REPOSITORIES}/env`, String(n));
      },
    );

    const service = `http://127.0.0.1:${hubPort + 10}/services/custom-images/api/v1/`;
    const admin = { Authorization: `token ${await hub.userToken('admin')}` };

    /** Asks for a clean-up and follows its registry run to the end (on a connection of its own); `during` runs meanwhile. */
    const cleanUp = async <T>(during: (done: () => boolean) => Promise<T>) => {
      const t0 = performance.now();
      const queued = (await (await fetch(`${service}storage/cleanup`, { method: 'POST', headers: admin })).json()) as Array<{
        id: number;
        kind: string;
      }>;
      const id = queued.find((r) => r.kind === 'registry')?.id;
      let run: Record<string, unknown> = {};
      let ended = false;
      const watcher = (async () => {
        while (performance.now() - t0 < 900_000) {
          run = await fetchWith(`${service}storage/cleanup/${id}`, { headers: admin, dispatcher: watch })
            .then(async (res) => (await res.json()) as Record<string, unknown>)
            .catch(() => run);
          if (run.status === 'succeeded' || run.status === 'failed') break;
          await new Promise((r) => setTimeout(r, 200));
        }
        ended = true;
      })();
      const result = await during(() => ended);
      await watcher;
      const seconds = (performance.now() - t0) / 1000;
      const inRun =
        typeof run.startedAt === 'string' && typeof run.finishedAt === 'string'
          ? (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000
          : NaN;
      return { run, seconds, inRun, deleted: (run.summary as { deletedManifests?: number } | null)?.deletedManifests ?? 0, result };
    };

    console.error(`bench: the clean-up of ${IMAGES * BUILDS} manifests, alone…`);
    const alone = await cleanUp(async (done) => {
      while (!done()) await new Promise((r) => setTimeout(r, 100));
    });
    console.error(`bench: ${SAMPLE} DELETEs by a bare client, ${WIDTH} at a time (the registry's own rate)…`);
    const bare = performance.now();
    await pool(
      Array.from({ length: SAMPLE }, (_, n) => n),
      WIDTH,
      async (n) => {
        const res = await fetch(`http://${registries.open}/v2/baseline/r${n % SAMPLE_REPOSITORIES}/env/manifests/${sampleDigests[n]}`, {
          method: 'DELETE',
        });
        await res.arrayBuffer();
        if (res.status !== 202) throw new Error(`bare DELETE: ${res.status}`);
      },
    );
    const perDelete = (performance.now() - bare) / 1000 / SAMPLE;

    const launched = await seed('loaded', LOADED_IMAGES);
    const launcher = { Authorization: `token ${hub.launchToken}` };
    const launchUrl = `${service}users/u0/images/${launched}/launch`;
    const warm = await fetch(launchUrl, { headers: launcher });
    if (warm.status !== 200) throw new Error(`launch: ${warm.status} ${await warm.text()}`);
    console.error(`bench: launches at ${RATE}/s before, during and after the clean-up of ${LOADED_IMAGES * BUILDS} manifests…`);
    await atFixedRate(launchUrl, launcher, RATE, 1);
    const before = await atFixedRate(launchUrl, launcher, RATE, BASELINE_SECONDS);
    const loaded = await cleanUp((done) => launchesUntil(launchUrl, launcher, done));
    const after = await atFixedRate(launchUrl, launcher, RATE, BASELINE_SECONDS);
    const during = loaded.result;
    const baseline = Math.max(before.p99, after.p99);
    const expected = IMAGES * (BUILDS - 1);
    const bareSeconds = perDelete * expected;
    return [
      {
        name: `clean-up: ${IMAGES * BUILDS} built manifests, ${expected} deleted from the registry (request to end)`,
        value: alone.seconds,
        unit: 's',
        baseline: 60,
        ratio: alone.seconds / 60,
        target: '< 60 s',
        ok: alone.seconds < 60 && alone.run.status === 'succeeded' && alone.deleted === expected,
        note: `${String(alone.run.status)}, ${alone.deleted} deleted; ${alone.inRun.toFixed(1)} s in the run (launches read, builds recorded, rules, deletes, kept ones measured)`,
      },
      {
        name: `clean-up: its time / the same DELETEs by a bare client at the registry's own rate, ${WIDTH} at a time`,
        value: alone.seconds,
        unit: 's',
        baseline: bareSeconds,
        ratio: alone.seconds / bareSeconds,
        target: '<= 1.5x',
        ok: alone.seconds <= 1.5 * bareSeconds,
        note: `the registry deleted ${(1 / perDelete).toFixed(0)} manifests/s for the bare client (${SAMPLE} sampled after the run)`,
      },
      {
        name: `launch API: p99 at ${RATE} launches/s while the clean-up runs / the same just before and after it (the worse)`,
        value: during.p99,
        unit: 'ms',
        baseline,
        ratio: during.p99 / baseline,
        target: '<= 1.5x',
        ok: during.p99 <= 1.5 * baseline || during.p99 <= 10,
        note: `p50 ${during.p50.toFixed(1)} ms over ${during.count} launches while ${loaded.deleted} manifests were deleted in ${loaded.seconds.toFixed(1)} s; before ${before.p99.toFixed(1)} ms, after ${after.p99.toFixed(1)} ms; errors ${during.errors + before.errors + after.errors}`,
      },
    ];
  } finally {
    await watch.close();
    await db?.destroy();
    await hub.stop();
    await registries.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
