/**
 * The composition root: config -> logger -> store -> hub client -> app -> listen.
 * SIGTERM stops accepting, lets in-flight requests finish, closes the database
 * and exits 0.
 */
import fs from 'node:fs';
import { createApp } from './app.js';
import { DockerEngine, dockerFromHost } from './runner/engine.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createHubClient } from './hub/client.js';
import { createLogger } from './log.js';
import { RegistryClient } from './registry/client.js';
import { createKeyring } from './secrets/keyring.js';
import { openDatabase } from './store/db.js';
import { migrateLatest } from './store/migrate.js';
import { WorkDir } from './workDir.js';

/** How long in-flight requests may take after SIGTERM before they are cut. */
const SHUTDOWN_GRACE_MS = 20_000;

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const problem of err.problems) console.error(`custom-images: configuration: ${problem}`);
      process.exit(1);
    }
    throw err;
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const logger = createLogger(config.logLevel);
  const db = openDatabase(config.databaseUrl);
  const applied = await migrateLatest(db);
  if (applied.length > 0) logger.info({ applied }, 'database migrated');

  const hub = createHubClient({ apiUrl: config.hub.apiUrl, apiToken: config.hub.apiToken });
  const keyring = await createKeyring(config.cryptKeys);
  if (!keyring.canSeal) logger.warn('CUSTOM_IMAGES_CRYPT_KEY is not set: registry passwords cannot be stored until it is');
  // DOCKER_HOST, or the local socket when there is one; without either, no pulls or run checks.
  const engine =
    config.dockerHost || fs.existsSync('/var/run/docker.sock') ? new DockerEngine(dockerFromHost(config.dockerHost)) : undefined;
  let workDir: WorkDir;
  try {
    workDir = WorkDir.open(config.workDir);
  } catch (err) {
    throw new Error(
      `the work directory ${config.workDir} (CUSTOM_IMAGES_WORK_DIR) cannot be written: ${err instanceof Error ? err.message : String(err)}; point it at a writable folder on the data volume`,
      { cause: err },
    );
  }
  const registry = new RegistryClient({
    trustedHosts: config.registries.trusted,
    maxImageBytes: config.registries.maxImageBytes,
    connectTimeoutMs: Math.min(config.registries.timeoutMs, 10_000),
    headersTimeoutMs: config.registries.timeoutMs,
    bodyTimeoutMs: config.registries.timeoutMs,
  });
  const { app, close, drain, worker, seedSystems } = createApp({ config, db, hub, logger, keyring, registry, engine, workDir });
  if (config.systemsFile) {
    const seeded = await seedSystems(JSON.parse(fs.readFileSync(config.systemsFile, 'utf8')) as unknown[]);
    if (seeded.length > 0) logger.info({ systems: seeded }, 'systems created from CUSTOM_IMAGES_SYSTEMS_FILE');
  }
  const server = app.listen(config.service.port, config.service.host, () => {
    logger.info({ url: config.service.url, prefix: config.service.prefix, docker: engine !== undefined }, 'custom-images listening');
    worker.start();
  });
  server.on('error', (err) => {
    logger.fatal({ err }, `cannot listen on ${config.service.host}:${config.service.port}; is another process using the port?`);
    process.exit(1);
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: no new connections, finishing requests in flight');
    drain();
    // Connections that turn idle after their last response are closed too.
    const idle = setInterval(() => server.closeIdleConnections(), 100);
    const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS).unref();
    // Checks in hand may finish within the grace period; a job cut off is picked up again after a restart.
    const jobs = Promise.race([worker.stop(), new Promise((r) => setTimeout(r, SHUTDOWN_GRACE_MS).unref())]);
    server.close(async () => {
      clearInterval(idle);
      clearTimeout(force);
      await jobs;
      await close();
      await db.destroy();
      workDir.close();
      logger.info('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  console.error(`custom-images: cannot start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
