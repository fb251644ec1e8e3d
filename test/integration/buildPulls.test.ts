/**
 * What the engine pulls for a build, and with whose logins (builds/builder.ts
 * `pull`): a base image named by the digest the service read with the
 * build's own login is built from the engine's copy when it has one (the same
 * bytes, and the build's user may read them); an image named by a tag
 * (`COPY --from`) is pulled again with the build's logins, so that another
 * user's private image that happens to be in the engine stays theirs. A real
 * engine, registries with and without a password, real SQLite.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import type { BuildRow } from '../../server/builds/store.js';
import { buildServices, type BuildServices } from '../support/builds.js';
import { pidsCgroup, type PidsCgroup } from '../support/cgroup.js';
import { ciDocker } from '../support/docker.js';
import { testUser } from '../support/identities.js';
import { debianBuildBase } from '../support/buildRegistry.js';
import { pushImage } from '../support/images.js';
import { PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';
import { testSystem } from '../support/systems.js';

let registries: TestRegistries;
let docker: Docker;
let db: Knex;
let dir: string;
let steps: PidsCgroup;
let services: BuildServices;
/** The Debian base, in the suite's build registry, and where builds go. */
let base: string;
let builds: string;
/** What only the password's holder may read: in the private image, never in a build of someone else's. */
const secret = `ada-private-${process.pid}-${Date.now()}`;

/** Builds `dockerfile` as image `name` of `owner`'s, to its end. */
async function build(owner: string, name: string, dockerfile: string): Promise<BuildRow> {
  const { build: queued } = await services.builds.create(
    testUser(owner),
    owner,
    { name, system: 'default', mode: 'dockerfile', dockerfile },
    [],
  );
  return services.run(queued.id);
}

/** The engine pulls `reference` with the password, as a launch of the password's holder would. */
async function pullWithPassword(reference: string): Promise<void> {
  const stream = (await docker.pull(reference, {
    authconfig: { username: USER, password: PASSWORD, serveraddress: registries.basic },
  })) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
}

beforeAll(async () => {
  docker = ciDocker();
  registries = await startRegistries();
  const debian = await debianBuildBase('build-pulls/debian');
  base = debian.image;
  builds = `${debian.registry}/build-pulls/built`;
  // The registries share their storage: the password-protected one serves the image pushed here.
  await pushImage(registries.open, 'lab/secret', '1', { layers: [{ files: { '/secret.txt': `${secret}\n` } }] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-build-pulls-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  steps = await pidsCgroup(docker, `ci-build-pulls-${process.pid}`, 512);
  services = buildServices(db, {
    keyring: await createKeyring([new Uint8Array(32).fill(6)]),
    trustedRegistries: [...registries.trusted, debian.registry],
    trustedGitHosts: [],
    systems: [
      testSystem({
        allowedRegistries: [`${registries.open}/*`, `${registries.basic}/*`, `${debian.registry}/build-pulls/*`],
        build: { enabled: true, pushTo: builds, network: 'none', baseImages: [] },
      }),
    ],
    cgroupParent: steps.parent,
  });
}, 300_000);

afterAll(async () => {
  for (const tag of [`${registries?.basic}/lab/secret:1`])
    await docker
      ?.getImage(tag)
      .remove()
      .catch(() => undefined);
  await steps?.remove();
  services?.workDir.close();
  await db?.destroy();
  await registries?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('what a build pulls, and with whose logins', { timeout: 300_000 }, () => {
  it("pulls a COPY --from image named by a tag again: another user's private image in the engine stays theirs", async () => {
    const privateImage = `${registries.basic}/lab/secret:1`;
    await pullWithPassword(privateImage);
    expect((await docker.getImage(privateImage).inspect()).RepoTags).toContain(privateImage);

    // Eve has no password for that registry: the engine asks it again with her (absent) login, and is refused.
    const stolen = await build('eve', 'steal', `FROM ${base}\nCOPY --from=${privateImage} /secret.txt /stolen.txt\n`);
    expect(stolen.status).toBe('failed');
    expect(stolen.digest).toBeNull();
    expect(stolen.log).not.toContain(secret);
    expect(stolen.log).toMatch(/no basic auth credentials|unauthorized|authentication required/i);

    // As a base image, it is refused by the service before the engine sees the Dockerfile.
    const based = await build('eve', 'based', `FROM ${privateImage}\nRUN cat /secret.txt\n`);
    expect(based.status).toBe('failed');
    expect(based.steps).toBe(0);
    expect(based.message).toMatch(/^Could not read the base image .*lab\/secret:1 \(line 1\)/);
    expect(based.log).not.toContain(secret);
  });

  it("builds from the engine's copy of a base image named by the digest the service read, and pulls it when it has none", async () => {
    const dockerfile = (n: number) => `FROM ${base}\nRUN echo ${n} > /n\n`;
    const first = await build('ada', 'first', dockerfile(1));
    expect(first.status).toBe('succeeded');
    // The base is in the engine now (this build or an earlier one of the suite pulled it).
    const second = await build('ada', 'second', dockerfile(2));
    expect(second.status).toBe('succeeded');
    expect(second.log).toMatch(/Step 1\/2 : FROM \S+\/build-pulls\/debian@sha256:[0-9a-f]{64}/);
    expect(second.log).not.toMatch(/Pulling from build-pulls\/debian|Image is up to date/);

    // A Dockerfile that also names an image by a tag: every image is asked for again.
    const tagged = await build('ada', 'tagged', `${dockerfile(3)}COPY --from=${base} /etc/os-release /base-os-release\n`);
    expect(tagged.status).toBe('succeeded');
    expect(tagged.log).toMatch(/Image is up to date for \S+\/build-pulls\/debian@sha256:/);
  });
});
