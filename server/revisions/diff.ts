/**
 * What changed between two inventories: packages added, removed and changed
 * (Python, conda, OS), and the versions of Python, the Jupyter components and
 * CUDA. Pure, and linear in the packages (one map per list): a diff of two
 * images with a few thousand packages each is answered within a request.
 */
import type { CondaPackage, Inventory, JupyterVersions, OsPackage, PythonPackage } from '../inventory/schema.js';

/** A version on each side; null where that side has none. */
export interface VersionChange {
  from: string | null;
  to: string | null;
}

/** The packages of one kind that differ; each list sorted by name. */
export interface PackageSetDiff<P> {
  added: P[];
  removed: P[];
  /** Same package, another version (for conda also another build or channel, for OS another architecture). */
  changed: Array<{ name: string; from: P; to: P }>;
  /** Packages on both sides, alike. */
  unchanged: number;
}

export const JUPYTER_COMPONENTS = ['jupyterhub', 'jupyter_server', 'jupyterlab', 'notebook', 'ipykernel'] as const satisfies ReadonlyArray<
  keyof JupyterVersions
>;

export interface InventoryDiff {
  /** The Python that runs jupyterhub-singleuser; null when it did not change. */
  python: VersionChange | null;
  /** The Jupyter components whose version changed (absent: unchanged). */
  jupyter: Partial<Record<keyof JupyterVersions, VersionChange>>;
  cuda: { cuda?: VersionChange; cudnn?: VersionChange };
  pythonPackages: PackageSetDiff<PythonPackage>;
  condaPackages: PackageSetDiff<CondaPackage>;
  /** The OS packages; `manager` when the package manager itself differs (dpkg on one side, apk on the other). */
  osPackages: PackageSetDiff<OsPackage> & { manager: VersionChange | null };
  /** What either inventory could not read in full: the lists above may then miss changes. */
  incomplete: string[];
  /** Nothing above differs. */
  same: boolean;
}

/** A Python distribution's name as pip compares names (PEP 503): `Jupyter_Server` is `jupyter-server`. */
export function normalizedPythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

function versionChange(from: string | null | undefined, to: string | null | undefined): VersionChange | null {
  const a = from ?? null;
  const b = to ?? null;
  return a === b ? null : { from: a, to: b };
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The difference of two lists keyed by `key` (the first of a key wins, as on
 * sys.path); `differs` says whether two entries of one key changed.
 */
function diffBy<P extends { name: string }>(
  from: readonly P[],
  to: readonly P[],
  key: (p: P) => string,
  differs: (a: P, b: P) => boolean,
): PackageSetDiff<P> {
  const before = new Map<string, P>();
  for (const p of from) if (!before.has(key(p))) before.set(key(p), p);
  const after = new Map<string, P>();
  for (const p of to) if (!after.has(key(p))) after.set(key(p), p);
  const result: PackageSetDiff<P> = { added: [], removed: [], changed: [], unchanged: 0 };
  for (const [k, b] of after) {
    const a = before.get(k);
    if (!a) result.added.push(b);
    else if (differs(a, b)) result.changed.push({ name: b.name, from: a, to: b });
    else result.unchanged++;
  }
  for (const [k, a] of before) if (!after.has(k)) result.removed.push(a);
  result.added.sort(byName);
  result.removed.sort(byName);
  result.changed.sort(byName);
  return result;
}

/**
 * OS packages by name; a name installed for several architectures (dpkg's
 * multiarch: libc6 for amd64 and i386) by name and architecture. A package
 * whose architecture changed (amd64 to all, as happens between versions) is
 * changed, not removed and added.
 */
function diffOsPackages(from: readonly OsPackage[], to: readonly OsPackage[]): PackageSetDiff<OsPackage> {
  const counts = new Map<string, number>();
  for (const list of [from, to]) {
    const seen = new Map<string, number>();
    for (const p of list) seen.set(p.name, (seen.get(p.name) ?? 0) + 1);
    for (const [name, n] of seen) counts.set(name, Math.max(counts.get(name) ?? 0, n));
  }
  const key = (p: OsPackage) => ((counts.get(p.name) ?? 0) > 1 ? `${p.name}\u0000${p.arch ?? ''}` : p.name);
  return diffBy(from, to, key, (a, b) => a.version !== b.version || a.arch !== b.arch);
}

/** What changed from `from` to `to`. */
export function diffInventories(from: Inventory, to: Inventory): InventoryDiff {
  const jupyter: InventoryDiff['jupyter'] = {};
  for (const component of JUPYTER_COMPONENTS) {
    const change = versionChange(from.jupyter[component], to.jupyter[component]);
    if (change) jupyter[component] = change;
  }
  const cuda: InventoryDiff['cuda'] = {};
  const cudaChange = versionChange(from.cuda.cuda, to.cuda.cuda);
  if (cudaChange) cuda.cuda = cudaChange;
  const cudnnChange = versionChange(from.cuda.cudnn, to.cuda.cudnn);
  if (cudnnChange) cuda.cudnn = cudnnChange;
  const python = versionChange(from.python?.version, to.python?.version);
  const pythonPackages = diffBy(
    from.pythonPackages,
    to.pythonPackages,
    (p) => normalizedPythonName(p.name),
    (a, b) => a.version !== b.version,
  );
  const condaPackages = diffBy(
    from.condaPackages,
    to.condaPackages,
    (p) => p.name,
    (a, b) => a.version !== b.version || a.build !== b.build || a.channel !== b.channel,
  );
  const osPackages = {
    ...diffOsPackages(from.osPackages?.packages ?? [], to.osPackages?.packages ?? []),
    manager: versionChange(from.osPackages?.manager, to.osPackages?.manager),
  };
  const incomplete = [...new Set([...from.incomplete, ...to.incomplete])];
  const differs = (d: PackageSetDiff<unknown>) => d.added.length + d.removed.length + d.changed.length > 0;
  const same =
    python === null &&
    Object.keys(jupyter).length === 0 &&
    Object.keys(cuda).length === 0 &&
    !differs(pythonPackages) &&
    !differs(condaPackages) &&
    !differs(osPackages) &&
    osPackages.manager === null;
  return { python, jupyter, cuda, pythonPackages, condaPackages, osPackages, incomplete, same };
}
