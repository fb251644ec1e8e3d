/**
 * What a host admin does for CUSTOM_IMAGES_BUILD_CGROUP_PARENT: a cgroup with
 * a limit on processes, under which the engine puts each build step's
 * container. Written to the host's cgroup file system (the tests run as root
 * on the engine's host), for the engine's cgroupfs driver, cgroup v1 or v2.
 */
import fs from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';

const ROOT = '/sys/fs/cgroup';

export interface PidsCgroup {
  /** The value for the build's cgroup parent. */
  parent: string;
  remove(): Promise<void>;
}

export async function pidsCgroup(docker: Docker, name: string, maxPids: number): Promise<PidsCgroup> {
  const info = (await docker.info()) as { CgroupDriver?: string; CgroupVersion?: string };
  if (info.CgroupDriver !== 'cgroupfs')
    throw new Error(`the engine uses the ${info.CgroupDriver} cgroup driver; this test sets up a cgroupfs parent only`);
  const v2 = info.CgroupVersion === '2';
  const limited = v2 ? path.join(ROOT, name) : path.join(ROOT, 'pids', name);
  fs.mkdirSync(limited);
  fs.writeFileSync(path.join(limited, 'pids.max'), String(maxPids));
  return {
    parent: `/${name}`,
    async remove() {
      // The engine made the same folder in every other v1 controller; the step's own cgroups may take a moment to go.
      const folders = v2 ? [limited] : fs.readdirSync(ROOT).map((controller) => path.join(ROOT, controller, name));
      for (const folder of folders.filter((f) => fs.existsSync(f))) {
        for (let attempt = 0; ; attempt++) {
          try {
            for (const child of fs.readdirSync(folder, { withFileTypes: true }).filter((e) => e.isDirectory()))
              fs.rmdirSync(path.join(folder, child.name));
            fs.rmdirSync(folder);
            break;
          } catch (err) {
            if (attempt >= 50) throw err;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      }
    },
  };
}

let shared: Promise<PidsCgroup> | undefined;

/**
 * The cgroup parent every build needs (CUSTOM_IMAGES_BUILD_CGROUP_PARENT:
 * building is refused without a limit on processes), one per test process,
 * made when a test first asks and removed when the process ends.
 */
export async function buildStepsCgroup(docker: Docker): Promise<string> {
  shared ??= pidsCgroup(docker, `ci-build-steps-${process.pid}`, 512).then((cgroup) => {
    process.once('beforeExit', () => void cgroup.remove().catch(() => undefined));
    return cgroup;
  });
  return (await shared).parent;
}
