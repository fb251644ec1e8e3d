/**
 * npm run bench: every number as a ratio against a baseline measured in the
 * same run on the same machine; the table is printed and written to
 * bench/results.json. Needs what .ci/setup installs and a build (dist/).
 */
import fs from 'node:fs';
import path from 'node:path';
import { benchBuild } from './build.js';
import { benchCleanup } from './cleanup.js';
import { benchDockerfile } from './dockerfile.js';
import { benchInventory } from './inventory.js';
import { benchLaunch } from './launch.js';
import { benchLinks } from './links.js';
import { benchPages } from './pages.js';
import { benchR2d } from './r2d.js';
import { benchRevisions } from './revisions.js';
import { benchSpawn } from './spawn.js';
import { benchStaticCheck } from './staticCheck.js';
import { formatTable, type BenchRow } from './table.js';

const sections: Array<[string, () => Promise<BenchRow[]>]> = [
  ['launch API', () => benchLaunch()],
  ['pages and repeated checks', () => benchPages()],
  ['static check', () => benchStaticCheck()],
  ['spawn', () => benchSpawn()],
  ['build', () => benchBuild()],
  ['dockerfile', () => benchDockerfile()],
  ['repositories (r2d)', () => benchR2d()],
  ['cleanup', () => benchCleanup()],
  ['revisions', () => benchRevisions()],
  ['inventory', () => benchInventory()],
  ['links', () => benchLinks()],
];
const only = process.argv[2];

const rows: BenchRow[] = [];
for (const [name, run] of sections) {
  if (only && !name.includes(only)) continue;
  console.error(`bench: ${name}`);
  rows.push(...(await run()));
}
console.log(formatTable(rows));
const file = path.resolve('bench/results.json');
fs.writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2)}\n`);
console.error(`bench: written to ${file}`);
process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
