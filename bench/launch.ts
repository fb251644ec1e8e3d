/**
 * The launch API under load (64 connections, 20 s in rounds, autocannon) against the
 * real service behind a real hub with a warm token cache, beside a bare
 * Express app answering a constant JSON on the same machine in the same run
 * (each server in its own process; autocannon in this one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { startHub, waitForCheck } from '../test/support/hub.js';
import { passingImage, pushImage } from '../test/support/images.js';
import { freePort, startRegistries } from '../test/support/registry.js';
import { percentile, type BenchRow } from './table.js';

const CONNECTIONS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);

/** Offered load for the latency row: more servers started per second than any hub starts. */
const FIXED_RATE = 200;

/** The closed-loop load is run in rounds, the service and the baseline taking turns. */
const ROUNDS = 4;

function load(url: string, headers: Record<string, string>, seconds: number): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections: CONNECTIONS, duration: seconds, headers }, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

interface Loaded {
  requestsPerSecond: number;
  /** Of the rounds' p50 and p99: the median, and the worst p99. */
  p50: number;
  p99: number;
  worstP99: number;
  failures: number;
}

/**
 * The service and the baseline under the same closed-loop load, in
 * alternating rounds that add up to SECONDS each: a shared or throttled
 * machine then slows both alike instead of whichever ran second.
 */
async function alternately(
  service: { url: string; headers: Record<string, string> },
  baseline: { url: string },
): Promise<{ service: Loaded; baseline: Loaded }> {
  const runs: { service: autocannon.Result[]; baseline: autocannon.Result[] } = { service: [], baseline: [] };
  const seconds = Math.max(1, Math.round(SECONDS / ROUNDS));
  // Not counted: both warm up (JIT, connection pools) before the first measured round.
  await load(service.url, service.headers, 2);
  await load(baseline.url, {}, 2);
  for (let round = 0; round < ROUNDS; round++) {
    runs.service.push(await load(service.url, service.headers, seconds));
    runs.baseline.push(await load(baseline.url, {}, seconds));
  }
  const summary = (results: autocannon.Result[]): Loaded => ({
    requestsPerSecond: results.reduce((sum, r) => sum + r.requests.total, 0) / results.reduce((sum, r) => sum + r.duration, 0),
    p50: percentile(
      results.map((r) => r.latency.p50),
      0.5,
    ),
    p99: percentile(
      results.map((r) => r.latency.p99),
      0.5,
    ),
    worstP99: Math.max(...results.map((r) => r.latency.p99)),
    failures: results.reduce((sum, r) => sum + r.errors + r.timeouts + r.non2xx, 0),
  });
  return { service: summary(runs.service), baseline: summary(runs.baseline) };
}

/**
 * Latency at a steady offered load: one request every 1/rate s whether or not
 * the earlier ones were answered (open loop; autocannon's rate limit sends
 * each second's quota in a burst, which measures the burst, not the service).
 */
export async function atFixedRate(
  url: string,
  headers: Record<string, string>,
  rate: number,
  seconds: number,
): Promise<{ p50: number; p99: number; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  const pending: Array<Promise<void>> = [];
  const start = performance.now();
  for (let i = 0; i < rate * seconds; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
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
  return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), errors };
}

/**
 * The baseline: Express answering a constant JSON, in a process of its own
 * like the service, so that neither shares its thread with the load generator.
 */
async function startBareExpress(port: number): Promise<ChildProcess> {
  const source = `
    const express = require('express');
    const app = express();
    app.get('/', (_req, res) => res.json({ image: 'registry.example.com/lab/env@sha256:0000', system: 'kube', uid: 1000 }));
    app.listen(${port}, '127.0.0.1', () => console.log('listening'));`;
  const proc = spawn(process.execPath, ['-e', source], {
    cwd: path.resolve(import.meta.dirname, '..'),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.once('data', () => resolve());
    proc.once('exit', (code) => reject(new Error(`bare Express exited with ${code}`)));
  });
  return proc;
}

export async function benchLaunch(): Promise<BenchRow[]> {
  const registries = await startRegistries();
  await pushImage(registries.open, 'bench/env', '1', passingImage());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-bench-systems-'));
  const systemsFile = path.join(dir, 'systems.json');
  fs.writeFileSync(
    systemsFile,
    JSON.stringify([
      {
        slug: 'kube',
        displayName: 'Kubernetes',
        allowedRegistries: [`${registries.open}/*`],
        mountPrefixes: ['/home/jovyan'],
        defaultMountPath: '/home/jovyan/work',
        spawner: 'kubernetes',
        enabled: true,
      },
    ]),
  );
  const hubPort = 18700;
  const hub = await startHub(hubPort, {
    CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
    CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile,
    CUSTOM_IMAGES_LOG_LEVEL: 'warn',
  });
  const barePort = await freePort();
  const bareServer = await startBareExpress(barePort);
  try {
    const token = await hub.userToken('bench');
    const headers = { Authorization: `token ${token}`, 'Content-Type': 'application/json' };
    const created = await fetch(`${hub.serviceUrl}api/v1/users/bench/images`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ system: 'kube', image: `${registries.open}/bench/env:1` }),
    });
    const image = (await created.json()) as { id: number };
    const job = (await (
      await fetch(`${hub.serviceUrl}api/v1/users/bench/images/${image.id}/check`, { method: 'POST', headers })
    ).json()) as { id: number };
    await waitForCheck(hub, token, job.id);
    // The hook calls the service directly, not through the proxy.
    const launchUrl = `http://127.0.0.1:${hubPort + 10}/services/custom-images/api/v1/users/bench/images/${image.id}/launch`;
    const warm = await fetch(launchUrl, { headers: { Authorization: `token ${hub.launchToken}` } });
    if (warm.status !== 200) throw new Error(`launch: ${warm.status} ${await warm.text()}`);

    console.error(
      `bench: launch API and bare Express, ${CONNECTIONS} connections, ${ROUNDS} alternating rounds, ${SECONDS} s each in all…`,
    );
    const closed = await alternately(
      { url: launchUrl, headers: { Authorization: `token ${hub.launchToken}` } },
      { url: `http://127.0.0.1:${barePort}/` },
    );
    console.error(`bench: launch API and bare Express at a fixed ${FIXED_RATE} requests/s…`);
    const steady = async (url: string, headers: Record<string, string>) => {
      // Not counted: the first second opens this client's connections, which is not the server's time.
      await atFixedRate(url, headers, FIXED_RATE, 1);
      return atFixedRate(url, headers, FIXED_RATE, SECONDS);
    };
    const launchAtRate = await steady(launchUrl, { Authorization: `token ${hub.launchToken}` });
    const baselineAtRate = await steady(`http://127.0.0.1:${barePort}/`, {});
    const errors = closed.service.failures + launchAtRate.errors;
    const ratio = closed.service.requestsPerSecond / closed.baseline.requestsPerSecond;
    return [
      {
        name: 'launch API: requests/s / bare Express constant JSON',
        value: closed.service.requestsPerSecond,
        unit: 'req/s',
        baseline: closed.baseline.requestsPerSecond,
        ratio,
        target: '>= 0.5',
        ok: ratio >= 0.5,
        note: `p50 ${closed.service.p50} ms, ${CONNECTIONS} connections, ${SECONDS} s in ${ROUNDS} rounds taking turns with the baseline`,
      },
      {
        name: `launch API: p99 latency, ${CONNECTIONS} connections as fast as they go (budget 10 ms; baseline is the bare app’s p99)`,
        value: closed.service.p99,
        unit: 'ms',
        baseline: closed.baseline.p99,
        ratio: closed.service.p99 / 10,
        target: '<= 10 ms',
        ok: closed.service.p99 <= 10,
        note: `median of the rounds; worst round ${closed.service.worstP99} ms (bare ${closed.baseline.worstP99} ms)`,
      },
      {
        name: `launch API: p99 latency at a fixed ${FIXED_RATE} requests/s (budget 10 ms; baseline is the bare app’s p99 at that rate)`,
        value: launchAtRate.p99,
        unit: 'ms',
        baseline: baselineAtRate.p99,
        ratio: launchAtRate.p99 / 10,
        target: '<= 10 ms',
        ok: launchAtRate.p99 <= 10,
        note: `p50 ${launchAtRate.p50.toFixed(1)} ms, one request every ${1000 / FIXED_RATE} ms`,
      },
      {
        name: 'launch API: errors, timeouts and non-2xx answers under load',
        value: errors,
        unit: '',
        baseline: 0,
        ratio: errors,
        target: '0',
        ok: errors === 0,
      },
    ];
  } finally {
    bareServer.kill();
    await hub.stop();
    await registries.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
