#!/usr/bin/env node
/**
 * The `custom-images` command for admins: database migrations and, as the
 * features land, key rotation and image checks.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadListenConfig, loadStoreConfig } from './config.js';
import { checkReport } from './checks/report.js';
import { memoryLayerCache } from './checks/layerCache.js';
import { runStaticCheck } from './checks/staticCheck.js';
import { unpinnedWarning } from './images/schema.js';
import { RegistryClient } from './registry/client.js';
import { parseReference, ReferenceError } from './registry/reference.js';
import { ImagePolicySchema } from './systems/schema.js';

const USAGE = `usage: custom-images <command> [options]

commands:
  migrate              apply pending database migrations
  migrate --status     list applied and pending migrations
  migrate --rollback   roll every migration back (drops the service's tables)
  reference REF [--json]
                       how an image reference is understood (exit 2 if invalid)
  check IMAGE [--platform P] [--username U --password-stdin]
        [--allow-registry HOST]... [--uid N] [--require-user] [--require-pip]
        [--python-min X.Y] [--python-max X.Y] [--hub-version V] [--json]
                       read IMAGE from its registry and say whether it can run
                       jupyterhub-singleuser as uid N (default 1000)
                       (exit 0 pass, 1 fail, 2 error)
  rotate-keys          re-seal every stored secret with the first key of
                       CUSTOM_IMAGES_CRYPT_KEY (give the new key first, the old after ";")
  healthcheck          exit 0 when the running service answers its /healthz (the
                       container's HEALTHCHECK), 1 otherwise
  help                 this text

The database is CUSTOM_IMAGES_DATABASE_URL (default: an SQLite file under ./data).`;

/**
 * The database commands load knex, libsodium and the stores on demand: a
 * `check` run needs none of them and starts faster without.
 */
async function databaseModules() {
  const [{ openDatabase }, { migrateLatest, migrateRollbackAll, migrationStatus }] = await Promise.all([
    import('./store/db.js'),
    import('./store/migrate.js'),
  ]);
  return { openDatabase, migrateLatest, migrateRollbackAll, migrationStatus };
}

async function migrate(args: string[]): Promise<number> {
  const { openDatabase, migrateLatest, migrateRollbackAll, migrationStatus } = await databaseModules();
  const { values } = parseArgs({ args, options: { status: { type: 'boolean' }, rollback: { type: 'boolean' } } });
  const db = openDatabase(loadStoreConfig().databaseUrl);
  try {
    if (values.status) {
      const { applied, pending } = await migrationStatus(db);
      for (const name of applied) process.stdout.write(`applied  ${name}\n`);
      for (const name of pending) process.stdout.write(`pending  ${name}\n`);
    } else if (values.rollback) {
      const names = await migrateRollbackAll(db);
      process.stdout.write(names.length ? `rolled back: ${names.join(', ')}\n` : 'nothing to roll back\n');
    } else {
      const names = await migrateLatest(db);
      process.stdout.write(names.length ? `applied: ${names.join(', ')}\n` : 'database is up to date\n');
    }
    return 0;
  } finally {
    await db.destroy();
  }
}

async function rotateKeys(): Promise<number> {
  const { openDatabase, migrateLatest } = await databaseModules();
  const [{ createKeyring }, { rotateCredentialKeys }, { ImageStore }, { SystemService }, { SystemStore }] = await Promise.all([
    import('./secrets/keyring.js'),
    import('./images/rotateKeys.js'),
    import('./images/store.js'),
    import('./systems/service.js'),
    import('./systems/store.js'),
  ]);
  const config = loadStoreConfig();
  const db = openDatabase(config.databaseUrl);
  try {
    await migrateLatest(db);
    const keyring = await createKeyring(config.cryptKeys);
    const users = await rotateCredentialKeys(new ImageStore(db), keyring);
    const site = await new SystemService({ store: new SystemStore(db), keyring }).rotateKeys();
    const resealed = users.resealed + site.resealed;
    const current = users.alreadyCurrent + site.alreadyCurrent;
    process.stdout.write(`re-sealed ${resealed} secret(s) with the first key; ${current} already used it\n`);
    return 0;
  } finally {
    await db.destroy();
  }
}

async function reference(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const [input] = positionals;
  if (input === undefined || positionals.length > 1) {
    console.error('usage: custom-images reference REF [--json]');
    return 2;
  }
  try {
    const ref = parseReference(input);
    const described = {
      input,
      registry: ref.registry,
      repository: ref.repository,
      tag: ref.tag ?? null,
      digest: ref.digest ?? null,
      normalized: ref.normalized,
      unpinned: ref.unpinned,
    };
    if (values.json) process.stdout.write(`${JSON.stringify(described, null, 2)}\n`);
    else {
      for (const [key, value] of Object.entries(described)) process.stdout.write(`${key.padEnd(11)} ${value ?? '-'}\n`);
      if (ref.unpinned) process.stdout.write(`warning     ${unpinnedWarning(ref)}\n`);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    if (values.json) process.stdout.write(`${JSON.stringify({ input, error: err.message })}\n`);
    console.error(`custom-images: invalid reference: ${err.message}`);
    return 2;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function check(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      platform: { type: 'string', default: 'linux/amd64' },
      username: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      'allow-registry': { type: 'string', multiple: true, default: [] },
      uid: { type: 'string' },
      'require-user': { type: 'boolean' },
      'require-pip': { type: 'boolean' },
      'python-min': { type: 'string' },
      'python-max': { type: 'string' },
      'hub-version': { type: 'string' },
      'max-layer-bytes': { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const [input] = positionals;
  if (input === undefined || positionals.length > 1) {
    console.error('usage: custom-images check IMAGE [--platform P] [--username U --password-stdin] [--allow-registry HOST] [--json]');
    return 2;
  }
  let ref;
  try {
    ref = parseReference(input);
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    console.error(`custom-images: invalid reference: ${err.message}`);
    return 2;
  }
  if (values['password-stdin'] && !values.username) {
    console.error('custom-images: --password-stdin needs --username');
    return 2;
  }
  const credentials = values.username
    ? { username: values.username, password: values['password-stdin'] ? await readStdin() : '' }
    : undefined;
  const policy = ImagePolicySchema.parse({
    ...(values.uid ? { uid: Number(values.uid) } : {}),
    requireUser: values['require-user'] ?? false,
    requirePip: values['require-pip'] ?? false,
    python: { min: values['python-min'], max: values['python-max'] },
  });
  const registry = new RegistryClient({
    trustedHosts: values['allow-registry'],
    ...(values['max-layer-bytes'] ? { maxLayerBytes: Number(values['max-layer-bytes']) } : {}),
  });
  const result = await runStaticCheck(
    { registry, layers: memoryLayerCache() },
    { reference: ref, platform: values.platform, policy, credentials, hubVersion: values['hub-version'] },
  );
  if (values.json) {
    process.stdout.write(`${JSON.stringify(checkReport(result), null, 2)}\n`);
  } else {
    process.stdout.write(`${result.reference}  ${result.verdict.toUpperCase()}\n`);
    if (result.digest) process.stdout.write(`digest    ${result.digest}\nplatform  ${result.platform}\n`);
    for (const f of result.findings) process.stdout.write(`  [${f.level}] ${f.code}: ${f.message}\n`);
  }
  return result.verdict === 'pass' ? 0 : result.verdict === 'fail' ? 1 : 2;
}

/** Asks the service this environment describes for its health: exit 0 healthy, 1 not. */
async function healthcheck(): Promise<number> {
  const { healthUrl } = loadListenConfig();
  try {
    const res = await fetch(healthUrl, { signal: AbortSignal.timeout(4_000) });
    if (res.ok) return 0;
    console.error(`custom-images: ${healthUrl} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  } catch (err) {
    console.error(`custom-images: ${healthUrl} did not answer: ${err instanceof Error ? err.message : String(err)}`);
  }
  return 1;
}

/** Runs one command; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'migrate':
        return await migrate(rest);
      case 'reference':
        return await reference(rest);
      case 'check':
        return await check(rest);
      case 'rotate-keys':
        return await rotateKeys();
      case 'healthcheck':
        return await healthcheck();
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        return 0;
      default:
        console.error(command ? `custom-images: unknown command "${command}"\n${USAGE}` : USAGE);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const problem of err.problems) console.error(`custom-images: configuration: ${problem}`);
      return 1;
    }
    console.error(`custom-images: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

// Exit explicitly: the registry client's keep-alive connections must not hold the process.
process.exit(await run(process.argv.slice(2)));
