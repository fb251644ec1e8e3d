/**
 * Where the project's own files are, whether we run from server/*.ts (tests,
 * tsx) or from dist/server/*.js (production): the folder with package.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  let dir = from;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${from}`);
    dir = parent;
  }
  return dir;
}

/** The project's root folder. */
const PROJECT_ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)));

/** Handlebars layouts, partials, pages and static assets. */
export const VIEWS_DIR = path.join(PROJECT_ROOT, 'views');
