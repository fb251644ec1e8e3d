/**
 * Check containers a killed replica left behind: removed by any replica of
 * the same deployment (they share the database that knows which jobs still
 * run), never those of another deployment on the same engine (a second hub,
 * a staging copy), whose job ids mean something only in its own database.
 */
import type { DockerEngine } from './engine.js';
import { CHECK_ID_LABEL, CHECK_LABEL, DEPLOYMENT_LABEL } from './runCheck.js';

/** Removes this deployment's check containers whose job no longer runs; returns how many. */
export async function removeOrphanContainers(
  engine: DockerEngine,
  deployment: string,
  stillRunning: (checkId: number) => Promise<boolean>,
): Promise<number> {
  let removed = 0;
  const containers = await engine.docker.listContainers({
    all: true,
    filters: { label: [`${CHECK_LABEL}=true`, `${DEPLOYMENT_LABEL}=${deployment}`] },
  });
  for (const info of containers) {
    const id = Number(info.Labels?.[CHECK_ID_LABEL]);
    if (Number.isInteger(id) && (await stillRunning(id))) continue;
    await engine.docker
      .getContainer(info.Id)
      .remove({ force: true, v: true })
      .catch(() => undefined);
    removed++;
  }
  return removed;
}
