/**
 * How revisions, diffs and a moved tag's changes are shown: the API's JSON
 * (each answer with its zod schema) and the pages' view objects. Never a
 * secret: build inputs only as a record shows them (no token).
 */
import { z } from 'zod';
import { CHECK_STATUSES } from '../checks/status.js';
import type { InventoryDiff, PackageSetDiff } from '../revisions/diff.js';
import { REASON_TEXT, REVISION_REASONS } from '../revisions/schema.js';
import type { ChangesView, DiffSide, DiffView, RevisionList, RevisionView } from '../revisions/service.js';

export const RevisionResponseSchema = z.object({
  number: z.number().int().positive(),
  reason: z.enum(REVISION_REASONS),
  reasonText: z.string(),
  status: z.enum(['passed', 'failed']),
  image: z.string(),
  digest: z.string(),
  manifestDigest: z.string(),
  platform: z.string(),
  checkId: z.number().int().nullable(),
  build: z.number().int().nullable(),
  running: z.boolean(),
  pending: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export function presentRevision(revision: RevisionView): z.infer<typeof RevisionResponseSchema> {
  return RevisionResponseSchema.parse({
    number: revision.number,
    reason: revision.reason,
    reasonText: REASON_TEXT[revision.reason],
    status: revision.status,
    image: revision.reference,
    digest: revision.digest,
    manifestDigest: revision.manifestDigest ?? revision.digest,
    platform: revision.platform,
    checkId: revision.checkId,
    build: revision.buildNumber,
    running: revision.running,
    pending: revision.pending,
    createdAt: revision.createdAt.toISOString(),
    updatedAt: revision.updatedAt.toISOString(),
  });
}

export const RevisionListResponseSchema = z.object({
  imageId: z.number().int().positive(),
  name: z.string(),
  system: z.string(),
  /** How many revisions the image's system keeps. */
  keep: z.number().int().positive(),
  /** The revision the image runs; null while none does (changed or being checked). */
  running: z.number().int().nullable(),
  /** A moved tag's new content, waiting for the owner to accept it or keep the running one. */
  pending: z.number().int().nullable(),
  /** The check reading (or that read) that new content. */
  candidate: z.object({ id: z.number().int(), status: z.enum(CHECK_STATUSES) }).nullable(),
  /** Older revisions no longer kept. */
  dropped: z.number().int(),
  revisions: z.array(RevisionResponseSchema),
});

export function presentRevisionList(list: RevisionList): z.infer<typeof RevisionListResponseSchema> {
  return RevisionListResponseSchema.parse({
    imageId: list.image.id,
    name: list.image.name,
    system: list.image.system.slug,
    keep: list.keep,
    running: list.running?.number ?? null,
    pending: list.pending?.number ?? null,
    candidate: list.candidate ? { id: list.candidate.id, status: list.candidate.status } : null,
    dropped: list.dropped,
    revisions: list.revisions.map(presentRevision),
  });
}

const VersionChangeSchema = z.object({ from: z.string().nullable(), to: z.string().nullable() });

function setSchema<P extends z.ZodTypeAny, V extends z.ZodTypeAny>(pkg: P, version: V) {
  return z.object({
    added: z.array(pkg),
    removed: z.array(pkg),
    changed: z.array(z.object({ name: z.string(), from: version, to: version })),
    unchanged: z.number().int(),
  });
}

const PythonPackageSchema = z.object({ name: z.string(), version: z.string(), installer: z.string().nullable() });
const CondaPackageSchema = z.object({ name: z.string(), version: z.string(), build: z.string(), channel: z.string() });
const OsPackageSchema = z.object({ name: z.string(), version: z.string(), arch: z.string().nullable() });

const DiffSideSchema = z.object({
  imageId: z.number().int().positive(),
  owner: z.string(),
  name: z.string(),
  /** The revision of the user's own image; null for someone else's (what it runs now). */
  revision: z.number().int().nullable(),
  image: z.string(),
  digest: z.string(),
  platform: z.string(),
});

export const InventoryDiffSchema = z.object({
  same: z.boolean(),
  python: VersionChangeSchema.nullable(),
  jupyter: z.record(z.string(), VersionChangeSchema),
  cuda: z.record(z.string(), VersionChangeSchema),
  pythonPackages: setSchema(PythonPackageSchema, z.string()),
  condaPackages: setSchema(CondaPackageSchema, CondaPackageSchema.omit({ name: true })),
  osPackages: setSchema(OsPackageSchema, OsPackageSchema.omit({ name: true })).extend({ manager: VersionChangeSchema.nullable() }),
  /** What either side's inventory could not read in full: the lists may miss changes. */
  incomplete: z.array(z.string()),
});

export const DiffResponseSchema = InventoryDiffSchema.extend({ from: DiffSideSchema, to: DiffSideSchema });

function presentSet<P extends { name: string }, O, V>(
  set: PackageSetDiff<P>,
  item: (p: P) => O,
  version: (p: P) => V,
): { added: O[]; removed: O[]; changed: Array<{ name: string; from: V; to: V }>; unchanged: number } {
  return {
    added: set.added.map(item),
    removed: set.removed.map(item),
    changed: set.changed.map((c) => ({ name: c.name, from: version(c.from), to: version(c.to) })),
    unchanged: set.unchanged,
  };
}

export function presentInventoryDiff(diff: InventoryDiff): z.infer<typeof InventoryDiffSchema> {
  return InventoryDiffSchema.parse({
    same: diff.same,
    python: diff.python,
    jupyter: diff.jupyter,
    cuda: diff.cuda,
    pythonPackages: presentSet(
      diff.pythonPackages,
      (p) => ({ name: p.name, version: p.version, installer: p.installer }),
      (p) => p.version,
    ),
    condaPackages: presentSet(
      diff.condaPackages,
      (p) => p,
      ({ version, build, channel }) => ({ version, build, channel }),
    ),
    osPackages: {
      ...presentSet(
        diff.osPackages,
        (p) => p,
        ({ version, arch }) => ({ version, arch }),
      ),
      manager: diff.osPackages.manager,
    },
    incomplete: diff.incomplete,
  });
}

function presentSide(side: DiffSide): z.infer<typeof DiffSideSchema> {
  return {
    imageId: side.imageId,
    owner: side.owner,
    name: side.name,
    revision: side.revision,
    image: side.reference,
    digest: side.digest,
    platform: side.platform,
  };
}

export function presentDiff(view: DiffView): z.infer<typeof DiffResponseSchema> {
  return DiffResponseSchema.parse({ ...presentInventoryDiff(view.diff), from: presentSide(view.from), to: presentSide(view.to) });
}

export const ChangesResponseSchema = RevisionListResponseSchema.extend({
  /** Why there is no diff (nothing waits, still reading, packages not recorded); null with one. */
  problem: z.string().nullable(),
  diff: InventoryDiffSchema.nullable(),
});

export function presentChanges(view: ChangesView): z.infer<typeof ChangesResponseSchema> {
  return ChangesResponseSchema.parse({
    ...presentRevisionList(view.list),
    problem: view.problem ?? null,
    diff: view.diff ? presentInventoryDiff(view.diff) : null,
  });
}

/** A digest as a page shows it in a table: the algorithm and the first 12 hex digits (the whole one in its title). */
export function shortDigest(digest: string): string {
  const [algorithm, hex = ''] = digest.split(':');
  return `${algorithm}:${hex.slice(0, 12)}`;
}

const JUPYTER_NAMES: Record<string, string> = {
  jupyterhub: 'JupyterHub',
  jupyter_server: 'Jupyter Server',
  jupyterlab: 'JupyterLab',
  notebook: 'Notebook',
  ipykernel: 'ipykernel',
};

/** A diff as a page shows it: the version changes in words, then a table per kind of package. */
export function presentDiffPage(diff: InventoryDiff) {
  const versions = [
    ...(diff.python ? [{ what: 'Python', ...diff.python }] : []),
    ...Object.entries(diff.jupyter).map(([key, change]) => ({ what: JUPYTER_NAMES[key] ?? key, ...change })),
    ...Object.entries(diff.cuda).map(([key, change]) => ({ what: key === 'cuda' ? 'CUDA' : 'cuDNN', ...change })),
    ...(diff.osPackages.manager ? [{ what: 'OS package manager', ...diff.osPackages.manager }] : []),
  ];
  const table = <P extends { name: string; version: string }>(title: string, set: PackageSetDiff<P>, detail: (p: P) => string) => ({
    title,
    rows: [
      ...set.added.map((p) => ({ change: 'added', name: p.name, from: '', to: detail(p) })),
      ...set.removed.map((p) => ({ change: 'removed', name: p.name, from: detail(p), to: '' })),
      ...set.changed.map((c) => ({ change: 'changed', name: c.name, from: detail(c.from), to: detail(c.to) })),
    ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    counts: { added: set.added.length, removed: set.removed.length, changed: set.changed.length, unchanged: set.unchanged },
  });
  return {
    same: diff.same,
    versions,
    incomplete: diff.incomplete,
    // A kind of package neither side has (conda in a Debian image) is left out.
    tables: [
      table('Python packages', diff.pythonPackages, (p) => p.version),
      table('conda packages', diff.condaPackages, (p) => `${p.version} (${p.build}${p.channel ? `, ${p.channel}` : ''})`),
      table('OS packages', diff.osPackages, (p) => `${p.version}${p.arch ? ` (${p.arch})` : ''}`),
    ].filter((t) => t.counts.added + t.counts.removed + t.counts.changed + t.counts.unchanged > 0),
  };
}
