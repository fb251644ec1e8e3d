/**
 * The inventory of an image, from its merged filesystem and what the layer
 * reading captured (server/inspect/capture.ts): no file is read here, no
 * program run. The Python packages are those of the interpreter that runs
 * jupyterhub-singleuser, found the way that interpreter finds them (its
 * prefix by the standard library's landmark, a venv's `pyvenv.cfg`,
 * Debian's dist-packages, `.pth` files, PYTHONPATH), named and versioned
 * as `python -m pip list` prints them. Pure.
 */
import type { Captured, CapturedPackage } from '../inspect/capture.js';
import { ruleInputsOf, type ImageFacts } from '../inspect/analyze.js';
import type { MergedFilesystem } from '../inspect/filesystem.js';
import type { ImageConfig } from '../registry/client.js';
import { canonicalName, normalizeVersion } from './pep440.js';
import {
  INVENTORY_VERSION,
  type CondaPackage,
  type Inventory,
  type JupyterVersions,
  type Kernelspec,
  type OsPackages,
  type PythonPackage,
} from './schema.js';

/** The PATH Docker uses when the image sets none. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** pip list leaves these out (pip's `stdlib_pkgs`). */
const PIP_SKIPS = new Set(['python', 'wsgiref', 'argparse']);
/** Entries kept of one list; an image with more is told it is partial. */
const LIST_LIMIT = 50_000;

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

function join(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** `a/./b/../c` against `base`, as a path inside the image. */
function resolvePath(base: string, relative: string): string {
  const parts: string[] = [];
  for (const part of `${relative.startsWith('/') ? '' : base}/${relative}`.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}

/** What one pass over the image's paths found for the inventory. */
interface Found {
  /** directory -> names of its `*.dist-info` / `*.egg-info` children. */
  metadata: Map<string, Set<string>>;
  /** directory -> its `.pth` and `.egg-link` files. */
  pth: Map<string, string[]>;
  eggLinks: Map<string, string[]>;
  /** `…/bin/pythonX.Y` paths. */
  pythons: string[];
  /** prefix -> its conda-meta record paths. */
  conda: Map<string, string[]>;
  kernels: string[];
  cudart: string[];
  cudnn: string[];
  statusD: string[];
  rpm: boolean;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** One pass over every path; cheap tests first, since an image has hundreds of thousands. */
function scan(fs: MergedFilesystem): Found {
  const found: Found = {
    metadata: new Map(),
    pth: new Map(),
    eggLinks: new Map(),
    pythons: [],
    conda: new Map(),
    kernels: [],
    cudart: [],
    cudnn: [],
    statusD: [],
    rpm: false,
  };
  const addMetadata = (dir: string, name: string) => {
    const names = found.metadata.get(dir);
    if (names) names.add(name);
    else found.metadata.set(dir, new Set([name]));
  };
  for (const p of fs.paths()) {
    if (p.endsWith('-info')) {
      if (p.endsWith('.dist-info') || p.endsWith('.egg-info')) addMetadata(parentOf(p), p.slice(p.lastIndexOf('/') + 1));
      continue;
    }
    if (p.endsWith('/METADATA') || p.endsWith('/PKG-INFO')) {
      // A layer written by hand may list a metadata file without its directory.
      const dir = parentOf(p);
      if (dir.endsWith('.dist-info') || dir.endsWith('.egg-info')) addMetadata(parentOf(dir), dir.slice(dir.lastIndexOf('/') + 1));
      continue;
    }
    if (p.endsWith('.pth')) push(found.pth, parentOf(p), p);
    else if (p.endsWith('.egg-link')) push(found.eggLinks, parentOf(p), p);
    else if (p.endsWith('.json')) {
      if (p.endsWith('/kernel.json') && p.includes('/share/jupyter/kernels/')) found.kernels.push(p);
      else if (parentOf(p).endsWith('/conda-meta')) push(found.conda, parentOf(parentOf(p)), p);
    } else if (p.includes('/bin/python') && /\/bin\/python\d+\.\d+$/.test(p)) found.pythons.push(p);
    else if (p.includes('/libcudart.so')) found.cudart.push(p);
    else if (p.includes('/libcudnn.so')) found.cudnn.push(p);
    else if (p.startsWith('/var/lib/dpkg/status.d/')) found.statusD.push(p);
    else if (p === '/var/lib/rpm/Packages' || p.endsWith('/rpm/rpmdb.sqlite') || p === '/var/lib/rpm/Packages.db') found.rpm = true;
  }
  return found;
}

/** What was captured of the file at `path` (symlinks followed), if it is a file. */
function capturedAt(fs: MergedFilesystem, path: string): Captured | undefined {
  const r = fs.resolve(path);
  return r.found && r.entry.type === 'file' ? r.entry.captured : undefined;
}

function textAt(fs: MergedFilesystem, path: string): string | undefined {
  const c = capturedAt(fs, path);
  return c?.kind === 'text' ? c.text : undefined;
}

/** The directory `path` names (symlinks followed), if it is one. */
function dirAt(fs: MergedFilesystem, path: string): string | undefined {
  const r = fs.resolve(path);
  return r.found && r.entry.type === 'dir' ? r.path : undefined;
}

function exists(fs: MergedFilesystem, path: string): boolean {
  return fs.resolve(path).found;
}

/** `key = value` lines of a pyvenv.cfg. */
function parseConfig(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) values.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  return values;
}

/** The first PATH directory where `name` is a regular file. */
function which(fs: MergedFilesystem, path: string[], name: string): string | undefined {
  for (const dir of path) {
    const r = fs.resolve(join(dir, name));
    if (r.found && r.entry.type === 'file') return join(dir, name);
  }
  return undefined;
}

/** An interpreter, laid out as it will find its packages. */
interface PythonLayout {
  /** As invoked (the shebang's path). */
  executable: string;
  /** `3.11` */
  minor: string;
  /** Where its standard library is (sys.base_prefix). */
  prefix: string;
  /** sys.prefix: the venv, or the prefix. */
  envPrefix: string;
  sysPath: string[];
}

/**
 * sys.base_prefix as CPython's getpath finds it: from the executable's
 * directory upwards, the first with `lib/pythonX.Y/os.py` (or the zipped
 * library); else the directory above `bin`.
 */
function findPrefix(fs: MergedFilesystem, binDir: string, minor: string): { prefix: string; libDir: string } {
  for (let dir = binDir; ; dir = parentOf(dir)) {
    for (const libDir of ['lib', 'lib64']) {
      const lib = join(dir, `${libDir}/python${minor}`);
      if (exists(fs, `${lib}/os.py`) || exists(fs, `${lib}/os.pyc`)) return { prefix: dir, libDir };
    }
    if (exists(fs, join(dir, `lib/python${minor.replace('.', '')}.zip`))) return { prefix: dir, libDir: 'lib' };
    if (dir === '/') break;
  }
  return { prefix: parentOf(binDir), libDir: 'lib' };
}

/**
 * Whether the interpreter's site.py is Debian's (and Ubuntu's), which looks
 * in dist-packages: read from the captured site.py, or, when the image has
 * none, from the layout Debian leaves.
 */
function isDebianPython(fs: MergedFilesystem, stdlib: string, prefix: string, minor: string): boolean {
  const site = textAt(fs, `${stdlib}/site.py`);
  if (site !== undefined) return site === 'dist-packages';
  return (
    prefix === '/usr' &&
    (exists(fs, '/usr/lib/python3/dist-packages') || exists(fs, `/usr/local/lib/python${minor}/dist-packages`)) &&
    !exists(fs, `/usr/lib/python${minor}/site-packages`)
  );
}

/** site.getsitepackages for one prefix: Debian's patched list, or CPython's own. */
function siteDirs(prefix: string, minor: string, libDir: string, debian: boolean, inVenv: boolean): string[] {
  const libs = libDir === 'lib' ? ['lib'] : [libDir, 'lib'];
  if (!debian) return libs.map((lib) => join(prefix, `${lib}/python${minor}/site-packages`));
  return [
    ...(inVenv ? [join(prefix, `lib/python${minor}/site-packages`)] : []),
    join(prefix, `local/lib/python${minor}/dist-packages`),
    join(prefix, 'lib/python3/dist-packages'),
    ...libs.map((lib) => join(prefix, `${lib}/python${minor}/dist-packages`)),
  ];
}

/** The interpreter's sys.path, as `python -m pip` would see it (the current directory and user site left out). */
function layoutOf(fs: MergedFilesystem, executable: string, env: string[], minorHint: string | undefined): PythonLayout | undefined {
  const real = fs.resolve(executable);
  if (!real.found) return undefined;
  const binDir = parentOf(executable);
  // A venv: pyvenv.cfg beside the executable or one directory up (CPython's getpath).
  let venv: { dir: string; config: Map<string, string> } | undefined;
  for (const dir of [binDir, parentOf(binDir)]) {
    const text = textAt(fs, join(dir, 'pyvenv.cfg'));
    if (text !== undefined) {
      venv = { dir, config: parseConfig(text) };
      break;
    }
  }
  const minor =
    /python(\d+\.\d+)$/.exec(real.path)?.[1] ??
    /^(\d+\.\d+)/.exec(venv?.config.get('version') ?? venv?.config.get('version_info') ?? '')?.[1] ??
    /python(\d+\.\d+)$/.exec(executable)?.[1] ??
    // A binary named plain `python3`: the check read the version from lib/pythonX.Y under its prefix.
    minorHint;
  if (!minor) return undefined;
  const home = venv?.config.get('home');
  const baseBin = home ? (dirAt(fs, home) ?? home) : parentOf(real.path);
  const { prefix, libDir } = findPrefix(fs, baseBin, minor);
  const stdlib = join(prefix, `${libDir}/python${minor}`);
  const pythonPath = (env.find((e) => e.startsWith('PYTHONPATH='))?.slice(11) ?? '').split(':').filter((d) => d.startsWith('/'));
  const debian = isDebianPython(fs, stdlib, prefix, minor);
  const sites = siteDirs(venv?.dir ?? prefix, minor, libDir, debian, venv !== undefined);
  // site.py reads a missing key as "true".
  if (venv && (venv.config.get('include-system-site-packages') ?? 'true').toLowerCase() === 'true')
    sites.push(...siteDirs(prefix, minor, libDir, debian, true));
  const sysPath = [...pythonPath, join(prefix, `lib/python${minor.replace('.', '')}.zip`), stdlib, `${stdlib}/lib-dynload`];
  return { executable, minor, prefix, envPrefix: venv?.dir ?? prefix, sysPath: [...sysPath, ...sites] };
}

/** site.addsitedir: the site directory, then the directories its `.pth` files name (sorted by file name), if they exist. */
function expandSites(fs: MergedFilesystem, found: Found, layout: PythonLayout): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (dir: string) => {
    const resolved = fs.resolve(dir);
    if (!resolved.found || seen.has(resolved.path)) return false;
    seen.add(resolved.path);
    out.push(dir);
    return true;
  };
  for (const dir of layout.sysPath) {
    const isSite = dir.endsWith('-packages');
    if (!add(dir) || !isSite) continue;
    const literal = dirAt(fs, dir);
    if (!literal) continue;
    const files = [...(found.pth.get(literal) ?? [])].sort();
    for (const file of files) {
      const text = textAt(fs, file) ?? '';
      for (const raw of text.split('\n')) {
        const line = raw.trimEnd();
        if (line === '' || line.startsWith('#') || line.startsWith('import ') || line.startsWith('import\t')) continue;
        add(resolvePath(dir, line));
      }
    }
  }
  return out;
}

/** pip's `installer`: the first non-empty line of INSTALLER. */
function installerOf(fs: MergedFilesystem, metadataDir: string): string | null {
  const text = textAt(fs, `${metadataDir}/INSTALLER`);
  const line = text
    ?.split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '');
  return line ?? null;
}

/** The distributions one directory holds, as importlib.metadata lists them. */
function distributionsIn(
  fs: MergedFilesystem,
  found: Found,
  dir: string,
): Array<{ name: string; version: string; installer: string | null }> {
  const literal = dirAt(fs, dir);
  if (!literal) return [];
  const out: Array<{ name: string; version: string; installer: string | null }> = [];
  for (const child of [...(found.metadata.get(literal) ?? [])].sort()) {
    const path = join(literal, child);
    const entry = fs.resolve(path);
    if (!entry.found) continue;
    let metadata: Captured | undefined;
    if (entry.entry.type === 'file') metadata = entry.entry.captured;
    else metadata = capturedAt(fs, `${path}/METADATA`) ?? capturedAt(fs, `${path}/PKG-INFO`);
    if (metadata?.kind !== 'python-metadata' || !metadata.name || !metadata.version) continue;
    out.push({
      name: metadata.name,
      version: normalizeVersion(metadata.version),
      installer: entry.entry.type === 'dir' ? installerOf(fs, path) : null,
    });
  }
  return out;
}

/** pip list: sys.path in order, the first distribution of a (normalised) name wins; `.egg-link` targets after a directory's own. */
function pythonPackagesOf(fs: MergedFilesystem, found: Found, sysPath: string[]): PythonPackage[] {
  const packages: PythonPackage[] = [];
  const seen = new Set<string>();
  const take = (location: string, dists: ReturnType<typeof distributionsIn>) => {
    for (const d of dists) {
      const key = canonicalName(d.name);
      if (seen.has(key)) continue;
      seen.add(key);
      if (!PIP_SKIPS.has(key)) packages.push({ ...d, location });
    }
  };
  for (const dir of sysPath) {
    take(dir, distributionsIn(fs, found, dir));
    const literal = dirAt(fs, dir);
    for (const link of [...((literal && found.eggLinks.get(literal)) ?? [])].sort()) {
      const target = textAt(fs, link)
        ?.split('\n')
        .map((l) => l.trim())
        .find((l) => l !== '');
      if (target) take(dir, distributionsIn(fs, found, resolvePath(dir, target)));
    }
  }
  return packages.sort((a, b) => canonicalName(a.name).localeCompare(canonicalName(b.name)));
}

/** `1:3.11.2-6+deb12u1` -> `3.11.2`; `3.11.6-r0` -> `3.11.6`. */
function upstreamVersion(version: string): string {
  return version.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
}

/** The patch level of a Python: its header, its conda record, its distribution package; else `X.Y`. */
function preciseVersion(
  fs: MergedFilesystem,
  prefix: string,
  minor: string,
  condaRecords: Map<string, CondaPackage[]>,
  os: OsPackages | null,
): string {
  const header = textAt(fs, join(prefix, `include/python${minor}/patchlevel.h`));
  if (header?.startsWith(`${minor}.`)) return header;
  const conda = condaRecords.get(prefix)?.find((p) => p.name === 'python');
  if (conda?.version.startsWith(`${minor}.`)) return conda.version;
  if (prefix === '/usr' && os) {
    const names = os.manager === 'dpkg' ? [`python${minor}-minimal`, `python${minor}`, `libpython${minor}-minimal`] : ['python3'];
    for (const name of names) {
      const pkg = os.packages.find((p) => p.name === name);
      const version = pkg && upstreamVersion(pkg.version);
      if (version?.startsWith(`${minor}.`)) return version;
    }
  }
  return minor;
}

/** A conda channel URL as `conda list` names it: `conda-forge`, `pkgs/main`; else the URL without its platform. */
export function condaChannel(raw: string): string {
  let url = raw.trim();
  if (url === '') return '';
  if (/\.(conda|tar\.bz2)$/.test(url)) url = parentOf(url);
  url = url.replace(/\/+$/, '').replace(/\/(noarch|[a-z]+-(?:64|32|aarch64|arm64|armv6l|armv7l|ppc64le|ppc64|s390x))$/, '');
  const m = /^https?:\/\/(conda\.anaconda\.org|repo\.anaconda\.com)\/(.+)$/.exec(url);
  return m?.[2] ?? url;
}

function condaOf(fs: MergedFilesystem, records: string[]): { packages: CondaPackage[]; truncated: boolean } {
  const packages: CondaPackage[] = [];
  let truncated = false;
  for (const path of records.sort()) {
    const c = capturedAt(fs, path);
    // name-version-build.json: names may hold "-", versions and builds may not.
    const parts = path.slice(path.lastIndexOf('/') + 1, -'.json'.length).split('-');
    const fromName = parts.length >= 3 ? { build: parts.pop() ?? '', version: parts.pop() ?? '', name: parts.join('-') } : undefined;
    if (c?.kind === 'conda' && c.truncated) truncated = true;
    const name = (c?.kind === 'conda' && c.name) || fromName?.name;
    const version = (c?.kind === 'conda' && c.version) || fromName?.version;
    if (!name || !version) continue;
    packages.push({
      name,
      version,
      build: (c?.kind === 'conda' && c.build) || fromName?.build || '',
      channel: condaChannel((c?.kind === 'conda' && c.channel) || ''),
    });
  }
  return { packages: packages.sort((a, b) => a.name.localeCompare(b.name)), truncated };
}

function osPackagesOf(fs: MergedFilesystem, found: Found, incomplete: string[]): OsPackages | null {
  const read = (path: string) => {
    const c = capturedAt(fs, path);
    if (c?.kind !== 'packages') return undefined;
    if (c.truncated) incomplete.push(`${path} is larger than this service reads; the OS package list is partial.`);
    return c;
  };
  const status = read('/var/lib/dpkg/status');
  const statusD = found.statusD.sort().map(read);
  if (status || statusD.some(Boolean)) {
    const packages: CapturedPackage[] = [];
    const seen = new Set<string>();
    for (const c of [status, ...statusD]) {
      for (const p of c?.packages ?? []) {
        const key = `${p.name}:${p.arch ?? ''}`;
        if (seen.has(key)) continue;
        seen.add(key);
        packages.push(p);
      }
    }
    return { manager: 'dpkg', packages: sortPackages(packages) };
  }
  const apk = read('/lib/apk/db/installed');
  if (apk) return { manager: 'apk', packages: sortPackages(apk.packages) };
  if (found.rpm) incomplete.push('The image has an rpm database; rpm packages are not listed (reading it would need the database itself).');
  return null;
}

function sortPackages(packages: CapturedPackage[]): CapturedPackage[] {
  return [...packages].sort((a, b) => (a.name === b.name ? (a.arch ?? '').localeCompare(b.arch ?? '') : a.name < b.name ? -1 : 1));
}

function jupyterOf(packages: PythonPackage[]): JupyterVersions {
  const version = (name: string) => packages.find((p) => canonicalName(p.name) === name)?.version ?? null;
  return {
    jupyterhub: version('jupyterhub'),
    jupyter_server: version('jupyter-server'),
    jupyterlab: version('jupyterlab'),
    notebook: version('notebook'),
    ipykernel: version('ipykernel'),
  };
}

/**
 * Kernelspecs as `jupyter kernelspec list` finds them: JUPYTER_PATH, the
 * environment's `share/jupyter`, then the system's; the first of a name
 * wins; ipykernel's own python3 when no file names it.
 */
function kernelspecsOf(fs: MergedFilesystem, found: Found, envPrefix: string | undefined, env: string[], ipykernel: boolean): Kernelspec[] {
  const jupyterPath = (env.find((e) => e.startsWith('JUPYTER_PATH='))?.slice(13) ?? '').split(':').filter((d) => d.startsWith('/'));
  const dataDirs = [
    ...jupyterPath,
    ...(envPrefix ? [join(envPrefix, 'share/jupyter')] : []),
    '/usr/local/share/jupyter',
    '/usr/share/jupyter',
  ];
  const specs: Kernelspec[] = [];
  const seen = new Set<string>();
  for (const dataDir of dataDirs) {
    const literal = dirAt(fs, `${dataDir}/kernels`);
    if (!literal) continue;
    for (const file of found.kernels.filter((k) => parentOf(parentOf(k)) === literal).sort()) {
      const name = parentOf(file)
        .slice(parentOf(file).lastIndexOf('/') + 1)
        .toLowerCase();
      const c = capturedAt(fs, file);
      if (seen.has(name) || c?.kind !== 'kernelspec' || !/^[a-z0-9._-]+$/.test(name)) continue;
      seen.add(name);
      specs.push({ name, displayName: c.displayName || name, language: c.language });
    }
  }
  if (ipykernel && !seen.has('python3')) specs.push({ name: 'python3', displayName: 'Python 3 (ipykernel)', language: 'python' });
  return specs.sort((a, b) => a.name.localeCompare(b.name));
}

/** The most precise version among library names: `libcudart.so.12.2.140` -> `12.2.140`. */
function libraryVersion(paths: string[], library: string): string | null {
  let best: string | null = null;
  for (const p of paths) {
    const m = new RegExp(`/${library}\\.so\\.(\\d+(?:\\.\\d+)*)$`).exec(p);
    const v = m?.[1];
    if (v && (best === null || v.split('.').length > best.split('.').length)) best = v;
  }
  return best;
}

/** Options for {@link extractInventory}. */
export interface ExtractOptions {
  /** Files the layer reading wanted but left out at its bound (LayerIndex.uncaptured, summed). */
  uncaptured?: number;
}

/** The inventory of an image: its merged filesystem, its config, and the facts the check found. */
export function extractInventory(fs: MergedFilesystem, config: ImageConfig, facts: ImageFacts, options: ExtractOptions = {}): Inventory {
  const incomplete: string[] = [];
  const found = scan(fs);
  const env = config.config?.Env ?? [];
  const path = (env.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH).split(':').filter((d) => d.startsWith('/'));
  const osPackages = osPackagesOf(fs, found, incomplete);

  const condaByPrefix = new Map<string, CondaPackage[]>();
  const condaOfPrefix = (prefix: string) => {
    let list = condaByPrefix.get(prefix);
    if (!list) {
      const read = condaOf(fs, found.conda.get(prefix) ?? []);
      if (read.truncated) incomplete.push(`A conda record under ${prefix}/conda-meta is larger than this service reads.`);
      list = read.packages;
      condaByPrefix.set(prefix, list);
    }
    return list;
  };
  for (const prefix of found.conda.keys()) condaOfPrefix(prefix);

  // The singleuser's interpreter; for an image without one, the python3 on PATH, so that its packages still show.
  const invoked = facts.interpreter?.path ?? which(fs, path, 'python3') ?? which(fs, path, 'python');
  const layout = invoked ? layoutOf(fs, invoked, env, facts.interpreter?.path === invoked ? facts.python?.version : undefined) : undefined;
  const sysPath = layout ? expandSites(fs, found, layout) : [];
  const pythonPackages = layout ? pythonPackagesOf(fs, found, sysPath) : [];

  const pythons = new Map<string, { executable: string; version: string }>();
  for (const candidate of found.pythons.sort()) {
    const r = fs.resolve(candidate);
    if (!r.found || r.entry.type !== 'file' || pythons.has(r.path)) continue;
    const minor = /python(\d+\.\d+)$/.exec(candidate)?.[1] ?? '';
    const { prefix } = findPrefix(fs, parentOf(r.path), minor);
    pythons.set(r.path, { executable: candidate, version: preciseVersion(fs, prefix, minor, condaByPrefix, osPackages) });
  }
  const python = layout
    ? { executable: layout.executable, version: preciseVersion(fs, layout.prefix, layout.minor, condaByPrefix, osPackages) }
    : null;
  const realPython = layout ? fs.resolve(layout.executable) : undefined;
  if (python && realPython?.found) pythons.delete(realPython.path);

  const jupyter = jupyterOf(pythonPackages);
  if (options.uncaptured)
    incomplete.push(`${options.uncaptured} package metadata files were not read: a layer holds more of them than this service keeps.`);
  // conda lists the environment's prefix (a venv made from a conda Python has none of its own).
  const condaPackages = layout ? (found.conda.has(layout.envPrefix) ? condaOfPrefix(layout.envPrefix) : condaOfPrefix(layout.prefix)) : [];
  const lists = { pythonPackages, condaPackages, osPackages };
  for (const [name, list] of [
    ['Python packages', lists.pythonPackages],
    ['conda packages', lists.condaPackages],
    ['OS packages', lists.osPackages?.packages ?? []],
  ] as const) {
    if (list.length > LIST_LIMIT)
      incomplete.push(`The image has more than ${LIST_LIMIT.toLocaleString('en')} ${name}; the first are listed.`);
  }
  return {
    version: INVENTORY_VERSION,
    python,
    pythons: [...(python ? [python] : []), ...[...pythons.values()].sort((a, b) => a.executable.localeCompare(b.executable))],
    pythonPackages: lists.pythonPackages.slice(0, LIST_LIMIT),
    condaPackages: lists.condaPackages.slice(0, LIST_LIMIT),
    osPackages: lists.osPackages && { ...lists.osPackages, packages: lists.osPackages.packages.slice(0, LIST_LIMIT) },
    jupyter,
    kernelspecs: kernelspecsOf(fs, found, layout?.envPrefix, env, jupyter.ipykernel !== null),
    cuda: { cuda: libraryVersion(found.cudart, 'libcudart'), cudnn: libraryVersion(found.cudnn, 'libcudnn') },
    ruleInputs: ruleInputsOf(facts),
    incomplete,
  };
}
