/**
 * Results and layer indexes are reused only where the reader proved access:
 * a registry can claim any digest and name any layer, so a digest alone must
 * not hand one user's result, log or private files to another. Real
 * registries (htpasswd) and a hostile one written here, real SQLite.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckRow } from '../../server/checks/store.js';
import { RegistryClient } from '../../server/registry/client.js';
import { createKeyring } from '../../server/secrets/keyring.js';
import type { Knex } from '../../server/store/db.js';
import { migratedDatabase } from '../support/database.js';
import { checkServices } from '../support/checkServices.js';
import { testUser } from '../support/identities.js';
import { pushImage, pythonWithJupyterhub, singleuserScript } from '../support/images.js';
import { freePort, PASSWORD, startRegistries, USER, type TestRegistries } from '../support/registry.js';

let registries: TestRegistries;
let hostile: { host: string; stop(): Promise<void> };
/** What the hostile registry claims: the victim's manifest digest, and a manifest of its own naming the victim's layer. */
const claim = { digest: '', layer: { digest: '', size: 0 } };
let victim: { digest: string; manifest: Buffer };

/** A registry on loopback that claims the victim's digest for its own tag, and lists the victim's layer in its own manifest. */
async function startHostileRegistry(): Promise<{ host: string; stop(): Promise<void> }> {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'] },
      rootfs: { type: 'layers', diff_ids: [] },
    }),
  );
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/v2/') return void res.writeHead(200).end('{}');
    if (url.startsWith('/v2/evil/claims/manifests/')) {
      // Whatever the victim's digest is, this tag "is" it; the manifest itself is not there.
      if (req.method === 'HEAD')
        return void res
          .writeHead(200, { 'Docker-Content-Digest': claim.digest, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' })
          .end();
      return void res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
    }
    if (url.startsWith('/v2/evil/names/manifests/')) {
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...claim.layer }],
        }),
      );
      const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
      res.writeHead(200, {
        'Docker-Content-Digest': digest,
        'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
        'Content-Length': manifest.length,
      });
      return void res.end(req.method === 'HEAD' ? undefined : manifest);
    }
    if (url === `/v2/evil/names/blobs/${configDigest}`) return void res.writeHead(200, { 'Content-Length': config.length }).end(config);
    // It does not have the victim's layer: it can only name it.
    res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { host: `127.0.0.1:${port}`, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

beforeAll(async () => {
  registries = await startRegistries();
  hostile = await startHostileRegistry();
  // The victim's private image: its own users, on the htpasswd registry.
  victim = await pushImage(registries.open, 'lab/secret', '1', {
    layers: [
      {
        files: {
          ...pythonWithJupyterhub({ users: 'root:x:0:0::/root:/bin/sh\nada-private:x:1000:100::/home/ada:/bin/sh\n' }),
          '/usr/local/bin/jupyterhub-singleuser': singleuserScript('/usr/bin/python3'),
        },
      },
    ],
  });
  const layer = (JSON.parse(victim.manifest.toString()) as { layers: Array<{ digest: string; size: number }> }).layers[0]!;
  claim.digest = victim.digest;
  claim.layer = { digest: layer.digest, size: layer.size };
}, 60_000);

afterAll(async () => {
  await hostile?.stop();
  await registries?.stop();
});

async function setUp(db: Knex) {
  const keyring = await createKeyring([new Uint8Array(32).fill(9)]);
  const registry = new RegistryClient({ trustedHosts: [...registries.trusted, hostile.host], attempts: 1 });
  const services = checkServices(db, { registry, keyring });
  const { images, checks: build } = services;
  // One layer cache for everybody, as the service has.
  const checks = build();
  /** Saves an image for `owner` and runs its check to the end; the stored check. */
  const check = async (owner: string, fields: Record<string, string>): Promise<CheckRow> => {
    const saved = await images.create(testUser(owner), owner, { system: 'default', ...fields });
    const job = await checks.request(testUser(owner), owner, saved.id);
    return services.run(checks, job.id);
  };
  return { check };
}

describe('reuse of results and layer indexes', () => {
  it("never hands a user's result or log to a registry that claims their digest", async () => {
    const { check } = await setUp(await migratedDatabase('SQLite'));
    const ada = await check('ada', {
      image: `${registries.basic}/lab/secret:1`,
      registry: registries.basic,
      username: USER,
      password: PASSWORD,
    });
    expect(ada.status).toBe('passed');
    expect(ada.log).toContain('lab/secret');

    const eve = await check('eve', { image: `${hostile.host}/evil/claims:1` });
    expect(eve.reusedFrom).toBeNull();
    expect(eve.status).not.toBe('passed');
    expect(eve.log).not.toContain('lab/secret');
    expect(JSON.stringify(eve)).not.toContain('ada-private');
  });

  it("never reads a user's private layer index for a manifest that only names the layer", async () => {
    const { check } = await setUp(await migratedDatabase('SQLite'));
    expect(
      (await check('ada', { image: `${registries.basic}/lab/secret:1`, registry: registries.basic, username: USER, password: PASSWORD }))
        .status,
    ).toBe('passed');

    const eve = await check('eve', { image: `${hostile.host}/evil/names:1` });
    expect(eve.status).toBe('error');
    expect(eve.findings[0]).toMatchObject({ code: 'registry.not_found', message: expect.stringMatching(/lost a layer/) });
    expect(JSON.stringify(eve)).not.toContain('ada-private');
  });

  it('reuses a result within the same repository and credential, without the earlier log, and for a public image', async () => {
    const { check } = await setUp(await migratedDatabase('SQLite'));
    const credentials = { registry: registries.basic, username: USER, password: PASSWORD };
    const ada = await check('ada', { image: `${registries.basic}/lab/secret:1`, ...credentials });
    const bob = await check('bob', { image: `${registries.basic}/lab/secret:1`, ...credentials });
    expect(bob).toMatchObject({ status: 'passed', reusedFrom: ada.id });
    expect(bob.log).not.toContain('Layer 1/1');
    expect(bob.log).toMatch(/checked before with the same policy and access: the result is reused/);

    // Read without credentials (the open registry serves the same repository), the image is public: any result serves.
    const open = await check('carl', { image: `${registries.open}/lab/secret:1` });
    expect(open.status).toBe('passed');
    const again = await check('dora', { image: `${registries.open}/lab/secret:1` });
    expect(again.reusedFrom).toBe(open.id);
  });
});
