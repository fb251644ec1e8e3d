/**
 * Where the service keeps its temporary files (git checkouts, build
 * contexts, uploads on their way in): a work directory on the data volume,
 * never /tmp, which the documented container (`--read-only`) cannot write
 * and which may be a small tmpfs.
 *
 * Each process has a folder of its own in it, named for its host, pid
 * namespace, pid and a random part, touched every half minute. What a killed
 * process left is removed by the others: at start, and then at every touch,
 * a process removes the folders of processes in its own pid namespace that
 * are gone (a service restarted by systemd), and any folder no one touched
 * for three minutes (a replica on another host that shares the volume and
 * died, or the earlier life of a restarted container). Replicas on one
 * volume never remove each other's live folders, and nothing else in the
 * directory is touched.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TOUCH_EVERY_MS = 30_000;
/** Untouched this long, a folder's process is taken to be gone (it touches its folder every half minute). */
const STALE_AFTER_MS = 3 * 60_000;
/** A process's folder: where its pid means something (host and pid namespace), its pid, and a random part. */
const PROCESS_FOLDER = /^(.+)\.(\d+)\.[0-9a-f]{8}$/;

export class WorkDir {
  /** This process's folder, under the work directory. */
  readonly folder: string;
  /** Where this process's pid means something: see {@link pidSpace}. */
  private readonly space = pidSpace();
  private readonly timer: NodeJS.Timeout;

  private constructor(
    readonly root: string,
    private readonly now: () => number,
  ) {
    this.folder = path.join(root, `${this.space}.${process.pid}.${randomBytes(4).toString('hex')}`);
    if (!fs.existsSync(root)) {
      fs.mkdirSync(root, { recursive: true });
      // As the image's /data: the group may write too (OpenShift starts an image as any uid in group 0).
      fs.chmodSync(root, 0o770);
    }
    fs.mkdirSync(this.folder, { mode: 0o700 });
    this.sweep();
    this.timer = setInterval(() => this.touch(), TOUCH_EVERY_MS).unref();
  }

  /**
   * Opens (creating it if need be) the work directory at `root` and removes
   * what earlier processes left there.
   *
   * @throws when `root` cannot be created or written: the service cannot build or take uploads without it.
   */
  static open(root: string, now: () => number = Date.now): WorkDir {
    return new WorkDir(path.resolve(root), now);
  }

  /** A new, empty folder for one job (`prefix` names what it holds); the caller removes it with {@link remove}. */
  make(prefix: string): string {
    return fs.mkdtempSync(path.join(this.folder, `${prefix}-`));
  }

  /** Removes a folder {@link make} gave, and all it holds. */
  remove(folder: string): void {
    fs.rmSync(folder, { recursive: true, force: true });
  }

  /** Stops touching the folder and removes it (at shutdown). */
  close(): void {
    clearInterval(this.timer);
    fs.rmSync(this.folder, { recursive: true, force: true });
  }

  private touch(): void {
    const at = new Date(this.now());
    try {
      fs.utimesSync(this.folder, at, at);
    } catch {
      // Removed from under us (an operator cleaning up): made again, so that jobs can still start.
      fs.mkdirSync(this.folder, { recursive: true, mode: 0o700 });
    }
    this.sweep();
  }

  /** Removes the folders of processes that are gone. */
  private sweep(): void {
    for (const entry of fs.readdirSync(this.root, { withFileTypes: true })) {
      const name = PROCESS_FOLDER.exec(entry.name);
      const full = path.join(this.root, entry.name);
      if (!name || !entry.isDirectory() || full === this.folder) continue;
      const pid = Number(name[2]);
      const gone =
        (name[1] === this.space && pid !== process.pid && !running(pid)) ||
        this.now() - (fs.lstatSync(full, { throwIfNoEntry: false })?.mtimeMs ?? this.now()) > STALE_AFTER_MS;
      if (!gone) continue;
      try {
        fs.rmSync(full, { recursive: true, force: true });
      } catch {
        // Another uid's leftovers (a replica started as another user): left for it, never a reason not to start.
      }
    }
  }
}

/**
 * Where a pid names one process: the host and its pid namespace (two
 * containers on the host network share the host's name, each with its own
 * pids). Without /proc, a random name: pids of others are then never judged.
 */
function pidSpace(): string {
  let namespace: string;
  try {
    namespace = /\[(\d+)\]/.exec(fs.readlinkSync('/proc/self/ns/pid'))?.[1] ?? randomBytes(4).toString('hex');
  } catch {
    namespace = randomBytes(4).toString('hex');
  }
  return `${os.hostname().replace(/[^A-Za-z0-9_-]/g, '_')}-${namespace}`;
}

/** Whether a process of this pid runs in this pid namespace. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
