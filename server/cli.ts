#!/usr/bin/env node
/**
 * The `custom-images` command for admins: database migrations and, as the
 * features land, key rotation and image checks.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadStoreConfig } from './config.js';
import { rotateCredentialKeys } from './images/rotateKeys.js';
import { ImageStore } from './images/store.js';
import { createKeyring } from './secrets/keyring.js';
import { openDatabase } from './store/db.js';
import { migrateLatest, migrateRollbackAll, migrationStatus } from './store/migrate.js';

const USAGE = `usage: custom-images <command> [options]

commands:
  migrate              apply pending database migrations
  migrate --status     list applied and pending migrations
  migrate --rollback   roll every migration back (drops the service's tables)
  rotate-keys          re-seal every stored secret with the first key of
                       CUSTOM_IMAGES_CRYPT_KEY (give the new key first, the old after ";")
  help                 this text

The database is CUSTOM_IMAGES_DATABASE_URL (default: an SQLite file under ./data).`;

async function migrate(args: string[]): Promise<number> {
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
  const config = loadStoreConfig();
  const db = openDatabase(config.databaseUrl);
  try {
    await migrateLatest(db);
    const result = await rotateCredentialKeys(new ImageStore(db), await createKeyring(config.cryptKeys));
    process.stdout.write(`re-sealed ${result.resealed} secret(s) with the first key; ${result.alreadyCurrent} already used it\n`);
    return 0;
  } finally {
    await db.destroy();
  }
}

/** Runs one command; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'migrate':
        return await migrate(rest);
      case 'rotate-keys':
        return await rotateKeys();
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

process.exitCode = await run(process.argv.slice(2));
