import { randomBytes } from 'node:crypto';
import os from 'node:os';

/** A name for this process among the replicas that claim jobs: host, pid and a random part (pids repeat across restarts). */
export function runnerId(): string {
  return `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}
