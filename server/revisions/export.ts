/**
 * A revision written out for reproduction: a pinned `requirements.txt` and
 * `environment.yml` (what the inventory can honestly pin; everything else
 * listed in comments, with why), and a JSON record a paper can cite. Pure:
 * the service hands in the inventory, the revision and the build inputs.
 */
import { stringify as yaml } from 'yaml';
import { conflict } from '../errors.js';
import { parseReference } from '../registry/reference.js';
import type { CondaPackage, Inventory, PythonPackage } from '../inventory/schema.js';
import { launchDigest, REASON_TEXT, type Revision } from './schema.js';
import type { BuildMode } from '../builds/inputs.js';

/** Installers that take distributions from a package index (pip's INSTALLER record names them). */
const INDEX_INSTALLERS = new Set(['pip', 'uv']);
/** The tools pip freeze leaves out: they install the others, and come with the Python. */
const INSTALLER_TOOLS = new Set(['pip', 'setuptools', 'wheel', 'distribute']);
/** pip options of a build's requirements that say where packages come from; carried over so that the pins resolve there again. */
const SOURCE_OPTIONS = ['--index-url', '-i', '--extra-index-url', '--find-links', '-f', '--trusted-host', '--no-index'];

/** What an export names about the revision it was made from. */
export interface ExportSource {
  imageName: string;
  owner: string;
  revision: Revision;
  /** When the check that recorded this content ended. */
  checkedAt: Date | null;
  /** The build that pushed it, for a built image. */
  build: BuildRecord | null;
}

/** A build's inputs as a record shows them: never its token, its files by name and size. */
export interface BuildRecord {
  number: number;
  mode: BuildMode;
  base: string | null;
  pip: string;
  conda: string;
  apt: string;
  dockerfile: string;
  files: Array<{ name: string; size: number }>;
  git: { url: string; ref: string | null; commit: string | null } | null;
}

/** One Python distribution and whether it can be pinned from a package index; if not, why. */
export interface PinDecision {
  pkg: PythonPackage;
  /** Undefined: pinned by `==`. */
  notPinned?: string;
}

/** Why a distribution cannot be reinstalled by `name==version` from a package index, or undefined when it can. */
export function whyNotPinned(pkg: PythonPackage): string | undefined {
  const name = pkg.name.toLowerCase();
  if (INSTALLER_TOOLS.has(name)) return 'an installer tool that comes with the Python (pip freeze leaves it out too)';
  if (!/(?:site|dist)-packages\/?$/.test(pkg.location))
    return `found in ${pkg.location}, outside the site-packages directories: an editable or development install`;
  if (pkg.installer === null) {
    // Debian's, Alpine's and Fedora's own Python packages live under /usr/lib and record no installer; pip's go to /usr/local or a prefix.
    if (pkg.location.startsWith('/usr/lib/'))
      return `installed with the OS packages (in ${pkg.location}, no installer recorded): the OS package pins it`;
    return 'no installer recorded (installed by setup.py or copied in): where it came from is unknown';
  }
  if (!INDEX_INSTALLERS.has(pkg.installer.toLowerCase())) {
    return pkg.installer === 'conda'
      ? 'installed by conda: see environment.yml'
      : `installed by ${pkg.installer}, not from a package index`;
  }
  if (pkg.version.includes('+')) return `a local version (${pkg.version}), which package indexes do not serve`;
  return undefined;
}

/** Every Python distribution with its decision, sorted by name. */
export function pinDecisions(inventory: Inventory): PinDecision[] {
  return [...inventory.pythonPackages]
    .sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()))
    .map((pkg) => {
      const notPinned = whyNotPinned(pkg);
      return notPinned === undefined ? { pkg } : { pkg, notPinned };
    });
}

/** The lines of a build's requirements that say where packages come from (`--index-url …`). */
export function sourceOptions(requirements: string): string[] {
  return requirements
    .split(/\r?\n/)
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter((l) => SOURCE_OPTIONS.includes(l.split(/[\s=]/)[0] ?? ''));
}

/** The words for content without a Python to pin. */
function noPython(source: ExportSource): never {
  throw conflict(
    `Revision ${source.revision.number} of "${source.imageName}" has no Python that runs jupyterhub-singleuser (its check found none), so there is nothing to pin in a requirements.txt or environment.yml. The JSON record lists what it holds.`,
  );
}

function header(source: ExportSource, inventory: Inventory, what: string): string[] {
  const { revision } = source;
  const lines = [
    `# ${what} of "${source.imageName}" (${source.owner}), revision ${revision.number} (${REASON_TEXT[revision.reason]}, check ${revision.status})`,
    `# Image: ${revision.reference}`,
    `# Content: ${launchDigest(revision)} (${revision.platform})${source.checkedAt ? `, checked ${source.checkedAt.toISOString()}` : ''}`,
  ];
  if (inventory.python) lines.push(`# Python ${inventory.python.version} (${inventory.python.executable})`);
  for (const problem of inventory.incomplete) lines.push(`# Incomplete: ${problem}; the lists below may miss packages.`);
  return lines;
}

/** `requirements.txt`: PyPI-installed distributions by `==`, the others in comments, with why. */
export function requirementsTxt(source: ExportSource, inventory: Inventory): string {
  if (!inventory.python) noPython(source);
  const decisions = pinDecisions(inventory);
  const pinned = decisions.filter((d) => d.notPinned === undefined);
  const lines = header(source, inventory, 'Pinned requirements');
  lines.push(`# ${pinned.length} of ${decisions.length} distributions pinned: pip install -r requirements.txt`);
  const options = source.build ? sourceOptions(source.build.pip) : [];
  if (options.length > 0) lines.push(`# Package sources of build ${source.build?.number}'s requirements:`, ...options);
  lines.push(...pinned.map((d) => `${d.pkg.name}==${d.pkg.version}`));
  const rest = decisions.filter((d) => d.notPinned !== undefined);
  if (rest.length > 0) {
    lines.push('# Not pinned:');
    for (const d of rest) lines.push(`#   ${d.pkg.name} ${d.pkg.version}: ${d.notPinned}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A conda channel as environment.yml names it: `conda-forge` for `https://conda.anaconda.org/conda-forge/linux-64`. */
export function channelName(channel: string): string {
  const url = /^https?:\/\/conda\.anaconda\.org\/([^/]+)/.exec(channel);
  if (url) return url[1] ?? channel;
  const repo = /^https?:\/\/repo\.anaconda\.com\/(pkgs\/[^/]+)/.exec(channel);
  if (repo) return repo[1] ?? channel;
  return channel.replace(/\/(?:linux|osx|win|noarch)(?:-[a-z0-9_]+)?\/?$/, '');
}

/** Why a conda package cannot be installed again by `channel::name=version=build`, or undefined when it can. */
export function whyCondaNotPinned(pkg: CondaPackage): string | undefined {
  const channel = pkg.channel.trim();
  if (channel === 'pypi' || channel === '<pip>') return 'installed by pip: pinned in the pip section';
  if (channel.startsWith('file:') || channel === 'local' || channel.startsWith('/'))
    return `from a local channel (${channel}), which another machine does not have`;
  return undefined;
}

/** `environment.yml`: conda packages by name=version=build from their channel, PyPI-installed ones under `pip:`. */
export function environmentYml(source: ExportSource, inventory: Inventory): string {
  if (!inventory.python) noPython(source);
  const conda = [...inventory.condaPackages].sort((a, b) => a.name.localeCompare(b.name));
  const pinnedConda = conda.filter((p) => whyCondaNotPinned(p) === undefined);
  const channels = [...new Set(pinnedConda.map((p) => channelName(p.channel)).filter((c) => c !== ''))];
  const dependencies: unknown[] = pinnedConda.map((p) => {
    const channel = channelName(p.channel);
    return `${channel ? `${channel}::` : ''}${p.name}=${p.version}${p.build ? `=${p.build}` : ''}`;
  });
  if (!conda.some((p) => p.name === 'python')) dependencies.unshift(`python=${inventory.python.version}`);
  const pip = pinDecisions(inventory).filter((d) => d.notPinned === undefined);
  if (pip.length > 0) {
    if (!conda.some((p) => p.name === 'pip')) dependencies.push('pip');
    dependencies.push({ pip: pip.map((d) => `${d.pkg.name}==${d.pkg.version}`) });
  }
  const lines = header(source, inventory, 'Pinned conda environment');
  lines.push(
    `# ${pinnedConda.length} of ${conda.length} conda packages and ${pip.length} pip distributions pinned: conda env create -f environment.yml`,
  );
  const notConda = conda.flatMap((p) => {
    const why = whyCondaNotPinned(p);
    return why === undefined ? [] : [`#   ${p.name} ${p.version}: ${why}`];
  });
  const notPip = pinDecisions(inventory).flatMap((d) =>
    d.notPinned === undefined || d.notPinned.startsWith('installed by conda') ? [] : [`#   ${d.pkg.name} ${d.pkg.version}: ${d.notPinned}`],
  );
  if (notConda.length + notPip.length > 0) lines.push('# Not pinned:', ...notConda, ...notPip);
  const body = yaml({ name: source.imageName, channels, dependencies }, { lineWidth: 0 });
  return `${lines.join('\n')}\n${body}`;
}

/** The JSON record of a revision: what a paper cites to name exactly this environment. */
export function revisionRecord(source: ExportSource, inventory: Inventory | undefined) {
  const { revision } = source;
  const reference = parseReference(revision.reference);
  const digest = launchDigest(revision);
  return {
    schema: 'custom-images/revision-record/v1',
    image: { owner: source.owner, name: source.imageName },
    revision: {
      number: revision.number,
      reason: revision.reason,
      status: revision.status,
      recordedAt: revision.createdAt.toISOString(),
      checkedAt: source.checkedAt?.toISOString() ?? null,
    },
    registry: reference.registry,
    repository: reference.repository,
    reference: revision.reference,
    /** Exactly this content, for `docker pull`. */
    pinned: `${reference.registry}/${reference.repository}@${digest}`,
    /** What the reference resolved to (an index or a manifest), and the platform's manifest. */
    digest: revision.digest,
    manifestDigest: digest,
    platform: revision.platform,
    inventory: inventory ?? null,
    build: source.build,
  };
}

export type RevisionRecord = ReturnType<typeof revisionRecord>;
