/**
 * Building: (a) the service's build of a base image + one pip package (its
 * wheel in the context), from request to pushed; (b) the same Dockerfile and
 * context by hand, `docker build` + `docker push`, same run, same engine;
 * (c) a rebuild with unchanged inputs against (a): the engine's layer cache
 * and the registry's existing layers. Each round uses a fresh first step,
 * so that no round's (a) or (b) finds the other's cache.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packagesDockerfile } from '../server/builds/packages.js';
import { createKeyring } from '../server/secrets/keyring.js';
import { openDatabase } from '../server/store/db.js';
import { migrateLatest } from '../server/store/migrate.js';
import { buildServices, greetingWheel } from '../test/support/builds.js';
import { pidsCgroup } from '../test/support/cgroup.js';
import { ciDocker } from '../test/support/docker.js';
import { testUser } from '../test/support/identities.js';
import { pushImage } from '../test/support/images.js';
import { startRegistries } from '../test/support/registry.js';
import { testSystem } from '../test/support/systems.js';
import { WorkDir } from '../server/workDir.js';
import { debianLayer } from './spawn.js';
import { percentile, type BenchRow } from './table.js';

const ROUNDS = Number(process.env.BENCH_BUILD_ROUNDS ?? 3);

export async function benchBuild(): Promise<BenchRow[]> {
  const registries = await startRegistries();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-build-'));
  const db = openDatabase(`sqlite://${dir}/db.sqlite`);
  // Building needs a limit on processes: the cgroup parent a host admin sets up.
  const steps = await pidsCgroup(ciDocker(), `bench-build-${process.pid}`, 1024);
  try {
    await migrateLatest(db);
    const base = `${registries.open}/base/debian:1`;
    await pushImage(registries.open, 'base/debian', '1', { layers: [{ path: debianLayer() }] });
    const wheel = greetingWheel(dir);
    const system = testSystem({
      allowedRegistries: [`${registries.open}/*`],
      build: { enabled: true, pushTo: `${registries.open}/bench`, network: 'host', baseImages: [{ name: 'Debian', image: base }] },
    });
    const services = buildServices(db, {
      keyring: await createKeyring([new Uint8Array(32).fill(3)]),
      trustedRegistries: registries.trusted,
      trustedGitHosts: [],
      systems: [system],
      cgroupParent: steps.parent,
      workDir: WorkDir.open(path.join(dir, 'work')),
    });
    const ada = testUser('ada');
    const written = packagesDockerfile({ base, pip: '--no-index\nci-greeting==1.0\n', conda: '', apt: [], files: [wheel.name] });
    const service: number[] = [];
    const byHand: number[] = [];
    const rebuild: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const fresh = (who: string) => written.replace(`FROM ${base}\n`, `FROM ${base}\nRUN echo ${who}-${round}-${Date.now()} > /bench\n`);
      let started = performance.now();
      const { image, build } = await services.builds.create(
        ada,
        'ada',
        { name: `bench-${round}`, system: 'default', mode: 'dockerfile', dockerfile: fresh('service') },
        [wheel],
      );
      const first = await services.run(build.id);
      if (first.status !== 'succeeded') throw new Error(`bench build failed:\n${first.log}`);
      service.push(performance.now() - started);

      const context = path.join(dir, `hand-${round}`);
      fs.mkdirSync(context);
      fs.writeFileSync(path.join(context, 'Dockerfile'), fresh('hand'));
      fs.writeFileSync(path.join(context, wheel.name), wheel.content);
      const tag = `${registries.open}/bench/hand/bench-${round}:1`;
      started = performance.now();
      // The system's network, as the service builds: the engine's default bridge cannot be made on these machines.
      execFileSync('docker', ['build', '-q', '--force-rm', '--network', 'host', '-t', tag, context], { stdio: 'ignore' });
      execFileSync('docker', ['push', '-q', tag], { stdio: 'ignore' });
      byHand.push(performance.now() - started);

      started = performance.now();
      const again = await services.builds.rebuild(ada, 'ada', image.id, undefined, []);
      const second = await services.run(again.id);
      if (second.status !== 'succeeded') throw new Error(`bench rebuild failed:\n${second.log}`);
      rebuild.push(performance.now() - started);
    }
    const median = (v: number[]) => percentile(v, 0.5);
    return [
      {
        name: `build of base image + one pip package, request to pushed (median of ${ROUNDS})`,
        value: median(service),
        unit: 'ms',
        baseline: median(byHand),
        ratio: median(service) / median(byHand),
        target: '<= 1.2x',
        ok: median(service) / median(byHand) <= 1.2,
        note: 'baseline: docker build + docker push of the same Dockerfile and context',
      },
      {
        name: `rebuild with unchanged inputs (median of ${ROUNDS})`,
        value: median(rebuild),
        unit: 'ms',
        baseline: median(service),
        ratio: median(rebuild) / median(service),
        target: '<= 0.1x',
        ok: median(rebuild) / median(service) <= 0.1,
        note: 'baseline: the first build of the same inputs',
      },
    ];
  } finally {
    await db.destroy();
    await registries.stop();
    await steps.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
