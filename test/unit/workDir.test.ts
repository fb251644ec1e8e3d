/**
 * The work directory: a folder per process, and what killed processes left
 * removed by the next one, without touching a live replica's folder or
 * anything else an admin keeps there.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkDir } from '../../server/workDir.js';

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
});

function freshRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-workdir-'));
  roots.push(root);
  return root;
}

/** A folder as another process would have made it, with a file in it, last touched `ageMs` ago. */
function folderOf(root: string, name: string, ageMs = 0): string {
  const folder = path.join(root, name);
  fs.mkdirSync(path.join(folder, 'git-abc'), { recursive: true });
  fs.writeFileSync(path.join(folder, 'git-abc', 'file'), 'left behind');
  const at = new Date(Date.now() - ageMs);
  fs.utimesSync(folder, at, at);
  return folder;
}

describe('WorkDir', () => {
  it('gives each job a folder of its own in the process folder, and removes it all at close', () => {
    const root = freshRoot();
    const work = WorkDir.open(root);
    const job = work.make('git');
    expect(path.dirname(job)).toBe(work.folder);
    expect(path.basename(job)).toMatch(/^git-/);
    fs.writeFileSync(path.join(job, 'f'), 'x');
    work.remove(job);
    expect(fs.readdirSync(work.folder)).toEqual([]);
    work.close();
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it("removes at start the folders of this host's processes that are gone, and those no one touched for long", () => {
    const root = freshRoot();
    // This process's own naming: where its pid means something, then the pid.
    const probe = WorkDir.open(root);
    const space = path.basename(probe.folder).replace(/\.\d+\.[0-9a-f]{8}$/, '');
    probe.close();
    const gone = spawnSync(process.execPath, ['-e', 'console.log(process.pid)']).stdout.toString().trim();
    const killed = folderOf(root, `${space}.${gone}.0a1b2c3d`);
    const elsewhereDied = folderOf(root, 'other-host-4026531836.1.1a2b3c4d', 10 * 60_000);
    const elsewhereLive = folderOf(root, 'other-host-4026531836.1.2b3c4d5e', 10_000);
    const unrelated = folderOf(root, 'kept-by-the-admin', 24 * 3600_000);
    fs.writeFileSync(path.join(root, 'custom-images.sqlite'), 'data');

    const work = WorkDir.open(root);
    expect(fs.existsSync(killed)).toBe(false);
    expect(fs.existsSync(elsewhereDied)).toBe(false);
    expect(fs.existsSync(elsewhereLive)).toBe(true);
    expect(fs.existsSync(unrelated)).toBe(true);
    expect(fs.readdirSync(root).sort()).toEqual(
      [path.basename(work.folder), 'custom-images.sqlite', 'kept-by-the-admin', 'other-host-4026531836.1.2b3c4d5e'].sort(),
    );
    work.close();
  });

  it('refuses to open where it cannot write', () => {
    const root = freshRoot();
    const file = path.join(root, 'a-file');
    fs.writeFileSync(file, '');
    expect(() => WorkDir.open(path.join(file, 'work'))).toThrow(/ENOTDIR/);
  });
});
