/**
 * From Start to a ready server, with a real JupyterHub and DockerSpawner, for
 * the Debian jupyterhub image (about 600 MB unpacked, .ci/debian-image) plus a
 * layer of its own: (a) a custom image not in the engine (pulled at Start),
 * (b) the same image pre-pulled by the service after its check, and the
 * baseline (c) plain DockerSpawner starting the hub's configured image,
 * already in the engine. The three take turns, round by round, so that a slow
 * minute slows all.
 *
 * Every round's custom image has a new layer of random bytes that no other
 * image shares: (a) must pull at least that much, whatever other images (the
 * build tests' and benchmarks', from the same Debian base) left in the engine.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DockerEngine, dockerFromHost } from '../server/runner/engine.js';
import { removeDataVolumes } from '../test/support/docker.js';
import { startHub, startServer, stopServer, waitForCheck, waitForServer, type TestHub } from '../test/support/hub.js';
import { pushImage } from '../test/support/images.js';
import { startRegistries } from '../test/support/registry.js';
import { percentile, type BenchRow } from './table.js';

const ROUNDS = Number(process.env.BENCH_SPAWN_ROUNDS ?? 3);
const USER = 'bench';
const SYSTEM = 'bench-docker';
/** The size of each round's own layer, stored uncompressed: what (a) pulls at least. */
const OWN_LAYER_BYTES = Number(process.env.BENCH_SPAWN_OWN_LAYER_MB ?? 200) * 1_000_000;

/** The cached Debian layer, built by .ci/debian-image when this machine has none yet. */
export function debianLayer(): string {
  if (process.env.TEST_DEBIAN_JUPYTERHUB_LAYER) return process.env.TEST_DEBIAN_JUPYTERHUB_LAYER;
  const out = execFileSync('bash', ['.ci/debian-image'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const layer = /TEST_DEBIAN_JUPYTERHUB_LAYER=(\S+)/.exec(out)?.[1];
  if (!layer) throw new Error('.ci/debian-image printed no layer');
  return layer;
}

/** Milliseconds from the start request to the hub calling the server ready. */
async function timedStart(hub: TestHub, options: Record<string, unknown>): Promise<number> {
  const started = performance.now();
  const res = await startServer(hub, USER, options);
  if (res.status >= 400) throw new Error(`start refused: ${res.status} ${JSON.stringify(res.body)}`);
  if (!(await waitForServer(hub, USER, 300_000))) throw new Error(`the server did not start:\n${hub.log().slice(-3000)}`);
  const ms = performance.now() - started;
  await stopServer(hub, USER);
  return ms;
}

export async function benchSpawn(): Promise<BenchRow[]> {
  const layer = debianLayer();
  const engine = new DockerEngine(dockerFromHost(process.env.DOCKER_HOST));
  const registries = await startRegistries();
  const standard = `${registries.open}/bench/standard:1`;
  /** The custom image of a round: the Debian layer and a layer of random bytes of its own. */
  const customImage = async (round: number) => {
    const tag = `r${round}`;
    const own = { files: { '/opt/bench/own': { content: randomBytes(OWN_LAYER_BYTES) } }, compression: 'none' as const };
    await pushImage(registries.open, 'bench/env', tag, { layers: [{ path: layer }, own] });
    return `${registries.open}/bench/env:${tag}`;
  };
  await pushImage(registries.open, 'bench/standard', '1', { layers: [{ path: layer }], user: 'jovyan' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-spawn-'));
  fs.writeFileSync(
    path.join(dir, 'systems.json'),
    JSON.stringify([
      {
        slug: SYSTEM,
        displayName: 'Bench',
        allowedRegistries: [`${registries.open}/*`],
        mountPrefixes: ['/home/jovyan'],
        defaultMountPath: '/home/jovyan/work',
        spawner: 'docker',
        enabled: true,
      },
    ]),
  );
  const hub = await startHub(18900, {
    CUSTOM_IMAGES_DEMO_SPAWNER: 'docker',
    CUSTOM_IMAGES_DEMO_IMAGE: standard,
    CUSTOM_IMAGES_DEMO_CONTAINER_PREFIX: 'bench',
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    CUSTOM_IMAGES_SYSTEMS_FILE: path.join(dir, 'systems.json'),
    CUSTOM_IMAGES_LOG_LEVEL: 'info',
  });
  const token = await hub.userToken(USER);
  const api = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${hub.serviceUrl}api/v1/${route}`, {
      method,
      headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.json()) as Record<string, unknown>;
  };
  /** Checks the image; a passed check on a Docker system pre-pulls it. */
  const check = async (id: number) => {
    const job = await api('POST', `users/${USER}/images/${id}/check`);
    const done = await waitForCheck(hub, token, Number(job.id), 600_000);
    if (done.status !== 'passed') throw new Error(`check ${String(done.status)}: ${JSON.stringify(done.findings)}`);
    return String(done.digest);
  };
  const prePulled = async (id: number) => {
    for (const deadline = Date.now() + 600_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      const start = (await api('GET', `users/${USER}/images/${id}`)).start as { state: string } | null;
      if (start?.state === 'ready') return;
      if (start?.state === 'failed') throw new Error('pre-pull failed');
    }
    throw new Error('pre-pull did not finish');
  };
  const times = { notPulled: [] as number[], prePulled: [] as number[], baseline: [] as number[] };
  try {
    const id = Number((await api('POST', `users/${USER}/images`, { system: SYSTEM, image: await customImage(0) })).id);
    let pinned = `${registries.open}/bench/env@${await check(id)}`;
    const options = { custom_images_system: SYSTEM, custom_images_image_id: id };
    // A first start of each, not counted: the data volume, the hub's first spawn, a cold page cache.
    await prePulled(id);
    await timedStart(hub, options);
    await engine.pull(standard, undefined);
    await timedStart(hub, {});
    for (let round = 1; round <= ROUNDS; round++) {
      console.error(`bench: spawn round ${round} of ${ROUNDS}`);
      // (a) A new image with a layer no image in the engine has, and the standard image gone too: Start pulls.
      await engine.removeImage(pinned);
      await engine.removeImage(standard);
      await api('PUT', `users/${USER}/images/${id}`, { system: SYSTEM, image: await customImage(round) });
      pinned = `${registries.open}/bench/env@${await check(id)}`;
      // The passed check pre-pulls it: let that end, then take it out again.
      await prePulled(id);
      await engine.removeImage(pinned);
      times.notPulled.push(await timedStart(hub, options));
      // (b) Pulled by the service after a check, before Start.
      await engine.removeImage(pinned);
      await check(id);
      await prePulled(id);
      times.prePulled.push(await timedStart(hub, options));
      // (c) The hub's own image, in the engine, with nothing from the service.
      if (!(await engine.hasImage(standard))) await engine.pull(standard, undefined);
      times.baseline.push(await timedStart(hub, {}));
    }
  } finally {
    await stopServer(hub, USER).catch(() => undefined);
    await hub.stop();
    await registries.stop();
    await removeDataVolumes(engine.docker, SYSTEM);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const median = (values: number[]) => percentile(values, 0.5);
  const [a, b, c] = [median(times.notPulled), median(times.prePulled), median(times.baseline)];
  const note = (values: number[]) => `median of ${values.length}: ${values.map((v) => Math.round(v)).join(', ')} ms`;
  return [
    {
      name: 'Start to ready: pre-pulled (b) vs pulled at Start (a)',
      value: b,
      unit: 'ms',
      baseline: a,
      ratio: b / a,
      target: '<= 0.3',
      ok: b / a <= 0.3,
      note: `${note(times.prePulled)}; (a) ${note(times.notPulled)}, each pulling at least ${OWN_LAYER_BYTES / 1_000_000} MB (a layer of its own)`,
    },
    {
      name: 'Start to ready: pre-pulled (b) vs plain DockerSpawner with the image present (c)',
      value: b,
      unit: 'ms',
      baseline: c,
      ratio: b / c,
      target: '<= 1.3',
      ok: b / c <= 1.3,
      note: `(c) ${note(times.baseline)}`,
    },
  ];
}
