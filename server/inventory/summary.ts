/** The one line a tile says of an inventory. Pure. */
import { canonicalName } from './pep440.js';
import type { Inventory } from './schema.js';

/** Two parts of a version: `4.2.5` -> `4.2`. */
function short(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

/** The tile's line: Python, how many packages, the Jupyter front end. */
export function inventorySummary(inventory: Inventory): string {
  const parts: string[] = [];
  if (inventory.python) parts.push(`Python ${short(inventory.python.version)}`);
  // A conda package that pip lists too is counted once.
  const pipNames = new Set(inventory.pythonPackages.map((p) => canonicalName(p.name)));
  const count = inventory.pythonPackages.length + inventory.condaPackages.filter((c) => !pipNames.has(canonicalName(c.name))).length;
  parts.push(`${count} package${count === 1 ? '' : 's'}`);
  if (inventory.jupyter.jupyterlab) parts.push(`JupyterLab ${short(inventory.jupyter.jupyterlab)}`);
  else if (inventory.jupyter.notebook) parts.push(`Notebook ${short(inventory.jupyter.notebook)}`);
  if (inventory.cuda.cuda) parts.push(`CUDA ${short(inventory.cuda.cuda)}`);
  return parts.join(' · ');
}
