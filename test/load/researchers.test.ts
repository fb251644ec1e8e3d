/**
 * Many researchers at once (200 for 60 s; LOAD_USERS and LOAD_SECONDS change
 * that), on SQLite and on PostgreSQL, through a real hub with a token each:
 * every one saves images with their own private-registry password, checks
 * them, has the hook launch them, edits and deletes some, and lists them.
 *
 * What must hold: no 5xx; afterwards every user's list and the database hold
 * exactly what that user saved and did not delete (nothing lost, nothing
 * twice); every check asked for ran once and passed; and no password ever
 * reached the registry or the hook on behalf of another user: the token
 * service grants each user only their own repositories and records who
 * asked, and each launch must hand back that user's own password.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Knex } from '../../server/store/db.js';
import { startHub, type TestHub } from '../support/hub.js';
import { copyImage, passingImage, pushImage } from '../support/images.js';
import { createTestDatabase } from '../support/postgres.js';
import { dockerSeed, writeSystemsFile } from '../support/systems.js';
import { startRegistries, type TestRegistries } from '../support/registry.js';

const USERS = Number(process.env.LOAD_USERS ?? 200);
const SECONDS = Number(process.env.LOAD_SECONDS ?? 60);

interface Saved {
  name: string;
  mountPath: string;
}

interface Outcome {
  /** Answers with status >= 500, as "METHOD path status body". */
  serverErrors: string[];
  /** Everything else that went against what the user expects. */
  problems: string[];
  requests: number;
  /** Check ids by image id. */
  checks: Map<number, number>;
  launches: number;
  created: number;
}

interface Researcher {
  name: string;
  token: string;
  password: string;
  saved: Map<number, Saved>;
}

let registries: TestRegistries;
const researchers: Researcher[] = [];
const accounts = new Map<string, { password: string; repositories: string }>();

beforeAll(async () => {
  for (let i = 0; i < USERS; i++) {
    const name = `load${String(i).padStart(3, '0')}`;
    const password = `pw-${name}-${randomBytes(6).toString('hex')}`;
    accounts.set(name, { password, repositories: `load/${name}/` });
    researchers.push({ name, token: '', password, saved: new Map() });
  }
  registries = await startRegistries({ accounts });
  // One image, in one private repository per user (blobs mounted, not uploaded again).
  const image = await pushImage(registries.open, 'load/base/env', '1', passingImage());
  const queue = researchers.map((r) => r.name);
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift())
        await copyImage(registries.open, 'load/base/env', `load/${name}/env`, '1', image.manifest);
    }),
  );
}, 180_000);

afterAll(async () => {
  await registries?.stop();
});

describe.each([
  ['SQLite', 18900],
  ['PostgreSQL', 19000],
] as const)(`${USERS} researchers at once on %s`, (engine, port) => {
  let hub: TestHub;
  let db: Knex;
  let dropDatabase: (() => Promise<void>) | undefined;
  let api: string;

  beforeAll(async () => {
    const systemsFile = writeSystemsFile([
      dockerSeed([`${registries.token}/load/*`], { slug: 'kube', displayName: 'Kubernetes', spawner: 'kubernetes' }),
    ]);
    let databaseUrl: string | undefined;
    if (engine === 'PostgreSQL') {
      const created = await createTestDatabase();
      databaseUrl = created.url;
      dropDatabase = created.drop;
    }
    hub = await startHub(port, {
      CUSTOM_IMAGES_TRUSTED_REGISTRIES: registries.trusted.join(','),
      CUSTOM_IMAGES_SYSTEMS_FILE: systemsFile,
      CUSTOM_IMAGES_LOG_LEVEL: 'info',
      ...(databaseUrl ? { CUSTOM_IMAGES_DATABASE_URL: databaseUrl } : {}),
    });
    db = openDatabase(databaseUrl ?? hub.databaseUrl);
    const tokens = await hub.userTokens(researchers.map((r) => r.name));
    for (const r of researchers) {
      r.token = tokens.get(r.name) ?? '';
      r.saved.clear();
    }
    // Straight to the service, as the hook does; the proxy is the hub's business.
    api = `http://127.0.0.1:${port + 10}/services/custom-images/api/v1/`;
  }, 180_000);

  afterAll(async () => {
    await db?.destroy();
    await hub?.stop();
    await dropDatabase?.();
  });

  it(
    'answers without 5xx, loses and doubles nothing, and opens each secret only for its owner',
    async () => {
      const tokenRequestsBefore = registries.tokenRequests.length;
      const outcome: Outcome = { serverErrors: [], problems: [], requests: 0, checks: new Map(), launches: 0, created: 0 };
      const end = Date.now() + SECONDS * 1000;

      const call = async (
        token: string,
        method: string,
        route: string,
        body?: unknown,
      ): Promise<{ status: number; body: Record<string, unknown> & { id?: number } }> => {
        outcome.requests++;
        const res = await fetch(`${api}${route}`, {
          method,
          headers: { Authorization: `token ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        if (res.status >= 500) outcome.serverErrors.push(`${method} ${route} ${res.status} ${text.slice(0, 200)}`);
        return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
      };
      const expectStatus = (what: string, got: { status: number; body: unknown }, want: number): boolean => {
        if (got.status === want) return true;
        outcome.problems.push(`${what}: ${got.status} ${JSON.stringify(got.body).slice(0, 200)}`);
        return false;
      };

      const work = async (r: Researcher) => {
        const reference = `${registries.token}/load/${r.name}/env:1`;
        for (let n = 1; Date.now() < end; n++) {
          const saved = { name: `env ${n}`, mountPath: `/home/jovyan/run${n}` };
          const created = await call(r.token, 'POST', `users/${r.name}/images`, {
            name: saved.name,
            system: 'kube',
            image: reference,
            registry: registries.token,
            username: r.name,
            password: r.password,
            mountPath: saved.mountPath,
          });
          if (!expectStatus(`${r.name} save`, created, 201)) continue;
          const id = Number(created.body.id);
          r.saved.set(id, saved);
          outcome.created++;

          const job = await call(r.token, 'POST', `users/${r.name}/images/${id}/check`);
          if (!expectStatus(`${r.name} check`, job, 202)) continue;
          outcome.checks.set(id, Number(job.body.id));
          let check = job.body;
          while (check.status === 'queued' || check.status === 'running') {
            await new Promise((resolve) => setTimeout(resolve, 400));
            check = (await call(r.token, 'GET', `checks/${String(job.body.id)}`)).body;
          }
          if (check.status !== 'passed') {
            outcome.problems.push(
              `${r.name} check ${String(job.body.id)} ${String(check.status)}: ${JSON.stringify(check.findings ?? check.message)}`,
            );
            continue;
          }

          const launch = await call(hub.launchToken, 'GET', `users/${r.name}/images/${id}/launch`);
          if (expectStatus(`${r.name} launch`, launch, 200)) {
            outcome.launches++;
            const pull = launch.body.pull as { dockerconfigjson: string | null };
            const auths = pull.dockerconfigjson
              ? (JSON.parse(pull.dockerconfigjson) as { auths: Record<string, { username: string; password: string }> }).auths
              : {};
            const auth = auths[registries.token];
            if (auth?.username !== r.name || auth.password !== r.password)
              outcome.problems.push(`${r.name} launch carried the credentials of ${String(auth?.username)}`);
            if ((launch.body.mount as { target: string }).target !== saved.mountPath)
              outcome.problems.push(`${r.name} launch mounts at ${JSON.stringify(launch.body.mount)}`);
          }

          if (n % 2 === 0) {
            const renamed = { name: `env ${n} edited`, mountPath: `/home/jovyan/edited${n}` };
            // A blank password keeps the stored one.
            const edited = await call(r.token, 'PUT', `users/${r.name}/images/${id}`, {
              name: renamed.name,
              system: 'kube',
              image: reference,
              registry: registries.token,
              username: r.name,
              password: '',
              mountPath: renamed.mountPath,
            });
            if (expectStatus(`${r.name} edit`, edited, 200)) r.saved.set(id, renamed);
          }
          if (n % 3 === 0) {
            const oldest = Math.min(...r.saved.keys());
            if (expectStatus(`${r.name} delete`, await call(r.token, 'DELETE', `users/${r.name}/images/${oldest}`), 204))
              r.saved.delete(oldest);
          }
          const list = await call(r.token, 'GET', `users/${r.name}/images`);
          const listed = (list.body as unknown as Array<{ id: number; name: string }>).map((i) => i.id).sort((a, b) => a - b);
          const expected = [...r.saved.keys()].sort((a, b) => a - b);
          if (JSON.stringify(listed) !== JSON.stringify(expected))
            outcome.problems.push(`${r.name} lists ${JSON.stringify(listed)}, saved ${JSON.stringify(expected)}`);
        }
      };
      await Promise.all(researchers.map(work));
      console.log(
        `${engine}: ${USERS} researchers, ${SECONDS} s: ${outcome.requests} requests, ${outcome.created} images saved, ${outcome.checks.size} checks, ${outcome.launches} launches`,
      );

      expect(outcome.serverErrors).toEqual([]);
      expect(outcome.problems).toEqual([]);
      expect(outcome.launches).toBeGreaterThan(USERS);

      // The database holds exactly what each user kept: one row each, with that user's credential.
      const rows = (await db('images')
        .leftJoin('credentials', 'credentials.image_id', 'images.id')
        .select(
          'images.id',
          'images.owner',
          'images.name',
          'images.mount_path',
          'credentials.owner as credential_owner',
          'credentials.username',
        )) as Array<Record<string, unknown>>;
      const expectedRows = researchers.flatMap((r) =>
        [...r.saved].map(([id, s]) => ({
          id,
          owner: r.name,
          name: s.name,
          mount_path: s.mountPath,
          credential_owner: r.name,
          username: r.name,
        })),
      );
      const byId = (a: { id: unknown }, b: { id: unknown }) => Number(a.id) - Number(b.id);
      expect(rows.map((row) => ({ ...row, id: Number(row.id) })).sort(byId)).toEqual(expectedRows.sort(byId));
      // Every save is on record once.
      const [audited] = (await db('audit').where({ action: 'image.create' }).count({ n: '*' })) as Array<{ n: number | string }>;
      expect(Number(audited?.n)).toBe(outcome.created);

      // Every check of a kept image exists once and passed (a deleted image takes its checks along).
      const kept = expectedRows.map((row) => outcome.checks.get(row.id)).filter((id) => id !== undefined);
      const checks = (await db('checks').whereIn('id', kept).select('id', 'status')) as Array<{ id: number; status: string }>;
      expect(checks).toHaveLength(kept.length);
      expect(new Set(checks.map((c) => c.status))).toEqual(new Set(['passed']));

      // The registry saw each user's password only for that user's own repository, and never a wrong one.
      const asked = registries.tokenRequests.slice(tokenRequestsBefore).filter((t) => t.scope.includes('load/'));
      expect(asked.length).toBeGreaterThan(0);
      const crossed = asked.filter((t) => t.refused || t.user === undefined || !t.scope.includes(`load/${t.user}/`));
      expect(crossed).toEqual([]);

      // And no password in anything the hub or the service printed.
      const log = hub.log();
      expect(researchers.filter((r) => log.includes(r.password)).map((r) => r.name)).toEqual([]);
    },
    SECONDS * 1000 + 240_000,
  );
});
