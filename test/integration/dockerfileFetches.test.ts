/**
 * Nothing a Dockerfile says makes the engine fetch from an address the
 * system does not allow: `ADD` of a URL (any case, JSON form, ONBUILD), a
 * FROM or COPY --from hidden from the checks by how the parser directives
 * are written, a repository's own Dockerfile, a base image whose config
 * carries an ONBUILD trigger. A TCP listener on 127.0.0.1 stands for the
 * address a researcher aims at (the cloud's metadata service, an internal
 * host): it must see no connection. Real engine, registry and git server.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildStepsCgroup } from '../support/cgroup.js';
import { ciDocker } from '../support/docker.js';
import { AppError } from '../../server/errors.js';
import type { BuildRow } from '../../server/builds/store.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { migrateLatest } from '../../server/store/migrate.js';
import type { System } from '../../server/systems/schema.js';
import { buildServices, type BuildServices } from '../support/builds.js';
import { startGitServer, type GitServer } from '../support/gitServer.js';
import { testUser } from '../support/identities.js';
import { pushImage } from '../support/images.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';
import { testSystem } from '../support/systems.js';

const LAYER = process.env.TEST_DEBIAN_JUPYTERHUB_LAYER;
let registries: TestRegistries;
let git: GitServer;
let db: Knex;
let dir: string;
let services: BuildServices;
let listener: net.Server;
let port: number;
/** Connections the listener accepted since the test began. */
let connections = 0;
const ada = testUser('ada');
let counter = 0;

beforeAll(async () => {
  if (!LAYER || !fs.existsSync(LAYER))
    throw new Error('TEST_DEBIAN_JUPYTERHUB_LAYER is not set: run the tests through .ci/run (.ci/debian-image builds the image)');
  listener = net.createServer((socket) => {
    connections++;
    // Answer as a web server would, so that a fetch that got here would succeed.
    socket.on('error', () => {});
    socket.end('HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nfetched');
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  port = (listener.address() as net.AddressInfo).port;
  registries = await startRegistries();
  git = await startGitServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-dockerfile-fetches-'));
  db = openDatabase(`sqlite://${dir}/db.sqlite`);
  await migrateLatest(db);
  const system: System = testSystem({
    allowedRegistries: [`${registries.open}/*`],
    build: {
      enabled: true,
      pushTo: `${registries.open}/built`,
      network: 'host',
      baseImages: [],
    },
  });
  services = buildServices(db, {
    keyring: await createKeyring([new Uint8Array(32).fill(9)]),
    trustedRegistries: registries.trusted,
    trustedGitHosts: [git.host],
    systems: [system],
    timeoutMs: 120_000,
    cgroupParent: await buildStepsCgroup(ciDocker()),
  });
  await pushImage(registries.open, 'base/debian', '1', { layers: [{ path: LAYER }] });
}, 300_000);

afterAll(async () => {
  await db?.destroy();
  await registries?.stop();
  await git?.stop();
  await new Promise((r) => listener?.close(r));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  connections = 0;
});

/**
 * Submits `dockerfile` as a new image of ada's and, if it is accepted, runs
 * the build to its end as a worker would: the refusal, or the build's row.
 */
async function submitAndRun(dockerfile: string, extra: Record<string, unknown> = {}): Promise<AppError | BuildRow> {
  const name = `fetch-${++counter}`;
  const submitted = await services.builds
    .create(ada, 'ada', { name, system: 'default', mode: 'dockerfile', dockerfile, ...extra }, [])
    .catch((err: unknown) => err);
  if (submitted instanceof AppError) return submitted;
  if (submitted instanceof Error) throw submitted;
  return services.run((submitted as { build: BuildRow }).build.id);
}

describe('a Dockerfile that would make the engine fetch elsewhere is refused at submission', { timeout: 300_000 }, () => {
  const base = () => `FROM ${registries.open}/base/debian:1`;
  const target = () => `127.0.0.1:${port}`;
  const cases: Array<[string, () => string, number]> = [
    ['ADD http://…', () => `${base()}\nADD http://${target()}/x /x\n`, 2],
    ['ADD HTTP://… in upper case', () => `${base()}\nADD HTTP://${target()}/x /x\n`, 2],
    ['ADD in JSON form', () => `${base()}\nADD ["http://${target()}/x", "/x"]\n`, 2],
    ['ONBUILD ADD that a later FROM of its stage runs', () => `${base()} AS one\nONBUILD ADD http://${target()}/x /x\nFROM one\n`, 2],
    [
      '(a) a FROM hidden by # syntax then # escape',
      () => `# syntax=docker/dockerfile:1\n# escape=\`\n${base()}\nRUN echo \\\nFROM ${target()}/evil:1\n`,
      5,
    ],
    [
      '(b) a FROM hidden by a byte-order mark before # escape',
      () => `\uFEFF# escape=\`\n${base()}\nRUN echo \\\nFROM ${target()}/evil:1\n`,
      4,
    ],
    [
      '(c) a COPY --from hidden by an indented # escape',
      () => `   # escape=\`\n${base()}\nRUN echo \\\nCOPY --from=${target()}/evil:1 /etc/hostname /x\n`,
      4,
    ],
    [
      '(d) ONBUILD COPY --from that a later FROM of its stage runs',
      () => `${base()} AS one\nONBUILD COPY --from=${target()}/evil:1 /etc/hostname /x\nFROM one\n`,
      2,
    ],
  ];
  it.each(cases)('%s: 400 naming the dockerfile and its line, nothing saved, no connection', async (_name, dockerfile, line) => {
    const images = await db('images').count({ n: '*' }).first();
    const outcome = await submitAndRun(dockerfile());
    expect(connections).toBe(0);
    expect(outcome).toBeInstanceOf(AppError);
    const err = outcome as AppError;
    expect(err.status).toBe(400);
    expect(err.fields.dockerfile).toMatch(new RegExp(`Line ${line}: `));
    expect(await db('images').count({ n: '*' }).first()).toEqual(images);
  });
});

describe('what the checks at submission cannot see is checked before the engine', { timeout: 300_000 }, () => {
  it("fails a repository's Dockerfile that ADDs a URL, in words, with no connection", async () => {
    git.commit('lab/fetches.git', { Dockerfile: `FROM ${registries.open}/base/debian:1\nADD http://127.0.0.1:${port}/x /x\n` });
    const done = await submitAndRun('', { gitUrl: `${git.origin}/lab/fetches.git` });
    expect(connections).toBe(0);
    expect(done).not.toBeInstanceOf(AppError);
    const row = done as BuildRow;
    expect(row.status).toBe('failed');
    expect(row.message).toMatch(
      new RegExp(
        `The repository's Dockerfile cannot be built here: Line 2: ADD would make the engine fetch http://127\\.0\\.0\\.1:${port}/x`,
      ),
    );
  });

  it.each([
    ['ADD of a URL', () => `ADD http://127.0.0.1:${port}/x /x`, () => /ADD would make the engine fetch http:\/\/127\.0\.0\.1/],
    [
      'COPY --from an image outside the allowed registries',
      () => `COPY --from=127.0.0.1:${port}/evil:1 /etc/hostname /x`,
      () =>
        new RegExp(
          `"ONBUILD COPY --from=127\\.0\\.0\\.1:${port}/evil:1 /etc/hostname /x" copies from 127\\.0\\.0\\.1:${port}/evil is not among the registries`,
        ),
    ],
  ])(
    'fails a build FROM a base image whose trigger does %s, naming image and trigger, with no connection',
    async (_name, trigger, message) => {
      const repository = `base/trigger-${++counter}`;
      await pushImage(registries.open, repository, '1', { layers: [{ files: { '/etc/hostname': 'base\n' } }], onBuild: [trigger()] });
      const done = await submitAndRun(`FROM ${registries.open}/${repository}:1\nLABEL a=b\n`);
      expect(connections).toBe(0);
      const row = done as BuildRow;
      expect(row.status).toBe('failed');
      expect(row.message).toMatch(
        new RegExp(
          `^The base image ${registries.open}/${repository}:1 \\(line 1\\) carries build triggers that cannot run here: "ONBUILD `,
        ),
      );
      expect(row.message).toMatch(message());
      // Refused before the engine: no step ran.
      expect(row.log).not.toMatch(/Step 1\//);
    },
  );

  it('builds from the digest it checked, not from an older copy the engine holds under the same tag', async () => {
    const repository = `base/retagged-${++counter}`;
    const reference = `${registries.open}/${repository}:1`;
    // Once the tag held an image whose trigger fetches from the listener, and the engine pulled it then
    // (as a build racing a push could have made it do).
    await pushImage(registries.open, repository, '1', {
      layers: [{ files: { '/etc/hostname': 'old\n' } }],
      onBuild: [`ADD http://127.0.0.1:${port}/x /x`],
    });
    execFileSync('docker', ['pull', '-q', reference]);
    // Now the tag holds a harmless image: what the registry shows the check.
    await pushImage(registries.open, repository, '1', { layers: [{ files: { '/etc/hostname': 'new\n' } }] });
    const done = (await submitAndRun(`FROM ${reference}\nLABEL a=b\n`)) as BuildRow;
    expect(connections).toBe(0);
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.log).toMatch(new RegExp(`Step 1/2 : FROM ${registries.open}/${repository}@sha256:[0-9a-f]{64}`));
    expect(done.log).not.toMatch(/Executing 1 build trigger/);
  });

  it('still runs the triggers of a base image that keep to the rules', async () => {
    await pushImage(registries.open, 'base/kind-trigger', '1', {
      layers: [{ path: LAYER as string }],
      onBuild: ['RUN echo from-the-trigger > /trigger.txt'],
    });
    const done = (await submitAndRun(`FROM ${registries.open}/base/kind-trigger:1\nRUN cat /trigger.txt\n`)) as BuildRow;
    if (done.status !== 'succeeded') console.log(done.log);
    expect(done.status).toBe('succeeded');
    expect(done.log).toMatch(/Executing 1 build trigger/);
    expect(done.log).toMatch(/from-the-trigger/);
  });
});
