/**
 * A launch link for a commit built already, against Start of the same image
 * from the spawn form, with a real JupyterHub and DockerSpawner: (a) POST
 * `api/v1/open` (the plan's button: the commit resolved with one request to
 * the git server, the visitor's image found, the check's result read, the
 * server started through the hub) until `open/state` says ready; (b) the
 * baseline, the spawn form's request (the hub's REST start with the
 * `user_options` the form gives), until the hub calls the server ready. The
 * image is the one the link built, pre-pulled by the service after its
 * check; the two take turns, round by round, so that a slow minute slows
 * both.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ciDocker, removeDataVolumes } from '../test/support/docker.js';
import { pidsCgroup } from '../test/support/cgroup.js';
import { startGitServer } from '../test/support/gitServer.js';
import { startHub, startServer, stopServer, waitForServer, type TestHub } from '../test/support/hub.js';
import { pushImage } from '../test/support/images.js';
import { startRegistries } from '../test/support/registry.js';
import { debianLayer } from './spawn.js';
import { percentile, type BenchRow } from './table.js';

const ROUNDS = Number(process.env.BENCH_LINK_ROUNDS ?? 11);
const USER = 'bench';
const SYSTEM = 'bench-links';

export async function benchLinks(): Promise<BenchRow[]> {
  const layer = debianLayer();
  const docker = ciDocker();
  const registries = await startRegistries();
  const git = await startGitServer();
  const steps = await pidsCgroup(docker, `bench-links-${process.pid}`, 1024);
  await pushImage(registries.open, 'bench/base', '1', { layers: [{ path: layer }] });
  await pushImage(registries.open, 'bench/standard', '1', { layers: [{ path: layer }], user: 'jovyan' });
  git.commit('lab/paper', {
    Dockerfile: `FROM ${registries.open}/bench/base:1\nCOPY --chown=1000:100 paper.ipynb /home/jovyan/work/paper.ipynb\n`,
    'paper.ipynb': '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-links-'));
  fs.writeFileSync(
    path.join(dir, 'systems.json'),
    JSON.stringify([
      {
        slug: SYSTEM,
        displayName: 'Bench links',
        allowedRegistries: [`${registries.open}/*`],
        mountPrefixes: ['/home/jovyan'],
        defaultMountPath: '/home/jovyan/work',
        spawner: 'docker',
        enabled: true,
        runCheck: true,
        buildEnabled: true,
        buildNetwork: 'host',
        buildPushTo: `${registries.open}/built`,
        buildBaseImages: [`Debian = ${registries.open}/bench/base:1`],
      },
    ]),
  );
  let hub: TestHub | undefined;
  try {
    hub = await startHub(20100, {
      CUSTOM_IMAGES_DEMO_SPAWNER: 'docker',
      CUSTOM_IMAGES_DEMO_IMAGE: `${registries.open}/bench/standard:1`,
      CUSTOM_IMAGES_DEMO_CONTAINER_PREFIX: 'bench-links',
      CUSTOM_IMAGES_BUILD_CGROUP_PARENT: steps.parent,
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
      CUSTOM_IMAGES_TRUSTED_GIT_HOSTS: git.host,
      CUSTOM_IMAGES_SYSTEMS_FILE: path.join(dir, 'systems.json'),
      CUSTOM_IMAGES_RUN_CHECKS: 'true',
      CUSTOM_IMAGES_LOG_LEVEL: 'info',
    });
    const running = hub;
    const token = await hub.userToken(USER);
    const api = async (method: string, route: string, body?: unknown) => {
      const res = await fetch(`${running.serviceUrl}api/v1/${route}`, {
        method,
        headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const answer = (await res.json()) as Record<string, unknown>;
      if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${JSON.stringify(answer)}`);
      return answer;
    };
    const link = { repo: `${git.origin}/lab/paper`, ref: 'main', system: SYSTEM, urlpath: 'notebooks/paper.ipynb' };
    /** Milliseconds from the plan's button (POST open) to the launch being ready. */
    const viaLink = async (): Promise<number> => {
      const started = performance.now();
      await api('POST', 'open', link);
      for (;;) {
        const state = await api('GET', 'open/state');
        if (state.step === 'ready') break;
        if (state.step === 'failed') throw new Error(`the link failed: ${String(state.message)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const ms = performance.now() - started;
      await stopServer(running, USER);
      return ms;
    };
    /** Milliseconds from the spawn form's start request to the hub calling the server ready. */
    const viaForm = async (options: Record<string, unknown>): Promise<number> => {
      const started = performance.now();
      const res = await startServer(running, USER, options);
      if (res.status >= 400) throw new Error(`start refused: ${res.status} ${JSON.stringify(res.body)}`);
      if (!(await waitForServer(running, USER, 300_000))) throw new Error('the server did not start');
      const ms = performance.now() - started;
      await stopServer(running, USER);
      return ms;
    };

    // The first open builds and checks (not counted): afterwards the commit is built, checked and pre-pulled.
    await viaLink();
    const { image } = (await api('GET', 'open/state')) as { image: { id: number } };
    for (const deadline = Date.now() + 600_000; ; await new Promise((r) => setTimeout(r, 200))) {
      const start = (await api('GET', `users/${USER}/images/${image.id}`)).start as { state: string } | null;
      if (start?.state === 'ready') break;
      if (Date.now() > deadline || start?.state === 'failed') throw new Error('the built image was not pre-pulled');
    }
    const options = { custom_images_system: SYSTEM, custom_images_image_id: image.id };
    // One start of each not counted: the hub's and the page cache's first time.
    await viaForm(options);
    await viaLink();
    const times = { link: [] as number[], form: [] as number[] };
    for (let round = 1; round <= ROUNDS; round++) {
      console.error(`bench: links round ${round} of ${ROUNDS}`);
      // Turns alternate who goes first, so that neither always follows the other's stop.
      if (round % 2 === 1) {
        times.link.push(await viaLink());
        times.form.push(await viaForm(options));
      } else {
        times.form.push(await viaForm(options));
        times.link.push(await viaLink());
      }
    }
    const link50 = percentile(times.link, 0.5);
    const form50 = percentile(times.form, 0.5);
    return [
      {
        name: 'launch link to ready, commit built already, vs Start from the spawn form (same pre-pulled image, median)',
        value: link50,
        unit: 'ms',
        baseline: form50,
        ratio: link50 / form50,
        target: '<= 1.3x',
        ok: link50 / form50 <= 1.3,
        note: `${ROUNDS} interleaved rounds; link ${times.link.map((t) => t.toFixed(0)).join('/')} ms, form ${times.form.map((t) => t.toFixed(0)).join('/')} ms`,
      },
    ];
  } finally {
    if (hub) {
      await stopServer(hub, USER).catch(() => undefined);
      await hub.stop();
    }
    await registries.stop();
    await git.stop();
    await steps.remove();
    await removeDataVolumes(docker, SYSTEM);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
