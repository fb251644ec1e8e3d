/**
 * The static check: read the image from its registry, layer by layer, into a
 * path index (reusing the index of any layer already read), and decide
 * whether it can run jupyterhub-singleuser. No Docker engine involved.
 */
import { analyzeImage, verdictOf, type Finding, type ImageFacts } from '../inspect/analyze.js';
import { MergedFilesystem } from '../inspect/filesystem.js';
import { indexLayer, UnpackLimitError, unpackLimits, type LayerIndex, type UnpackLimits } from '../inspect/layerIndex.js';
import { formatBytes } from '../format.js';
import type { Descriptor, RegistryClient, RegistryCredentials, ResolvedImage } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { parsePlatform } from '../registry/platform.js';
import type { ImageReference } from '../registry/reference.js';
import type { ImagePolicy } from '../systems/schema.js';
import { extractInventory } from '../inventory/extract.js';
import type { Inventory } from '../inventory/schema.js';
import type { LayerIndexCache, LayerScope } from './layerCache.js';

export type Verdict = 'pass' | 'fail' | 'error';

/** Where a check is, for a progress bar. */
export interface CheckProgress {
  phase: 'resolve' | 'layers' | 'analyze' | 'done';
  message: string;
  layersDone: number;
  layersTotal: number;
  bytesRead: number;
  bytesTotal: number;
  /** During the run check's pull. */
  pulledBytes?: number;
  pullTotal?: number;
}

export interface StaticCheckRequest {
  reference: ImageReference;
  platform: string;
  policy: ImagePolicy;
  credentials?: RegistryCredentials | undefined;
  hubVersion?: string | undefined;
  onProgress?: (progress: CheckProgress) => void;
  /** Lines for the check's log, like a build log. */
  log?: (line: string) => void;
  /** Cancels the registry's requests and streams (a check past its deadline). */
  signal?: AbortSignal | undefined;
  /**
   * How the image is read: "public" without credentials, else an id of the
   * credential (see CheckRow.access). Indexes read with credentials are reused
   * only for the same repository and access.
   */
  access?: string;
}

export interface StaticCheckResult {
  reference: string;
  /** What the reference points at (an index's digest for multi-platform images). */
  digest: string | undefined;
  /** The platform manifest's digest. */
  manifestDigest: string | undefined;
  platform: string;
  verdict: Verdict;
  findings: Finding[];
  facts: ImageFacts | undefined;
  /** What the image holds, when its layers were read (not for a check that ended before). */
  inventory?: Inventory | undefined;
  layers: { total: number; fromCache: number; bytesRead: number };
  durationMs: number;
}

export interface StaticCheckDeps {
  registry: RegistryClient;
  layers: LayerIndexCache;
  /** How many layers are read at once. */
  concurrency?: number;
  /** How much may be unpacked; by default four times the registry client's image limit. */
  unpack?: UnpackLimits;
  /** False: no package inventory (the bench's baseline); layers are then read without capturing. */
  inventory?: boolean;
}

/** Turns a registry failure into the finding a user reads; platform.missing fails the image, the rest are errors of the check. */
export function registryFinding(err: RegistryError): { verdict: Verdict; finding: Finding } {
  return { verdict: err.code === 'platform.missing' ? 'fail' : 'error', finding: { code: err.code, level: 'error', message: err.message } };
}

/** Runs the static check; never throws for registry problems (they become the verdict `error`). */
export async function runStaticCheck(deps: StaticCheckDeps, request: StaticCheckRequest): Promise<StaticCheckResult> {
  const started = Date.now();
  const log = request.log ?? (() => undefined);
  const findings: Finding[] = [];
  const { reference } = request;
  const progress: CheckProgress = {
    phase: 'resolve',
    message: `Asking ${reference.registry} for ${reference.normalized}`,
    layersDone: 0,
    layersTotal: 0,
    bytesRead: 0,
    bytesTotal: 0,
  };
  const report = () => request.onProgress?.({ ...progress });
  report();
  log(`Checking ${reference.normalized} for ${request.platform}`);
  if (reference.unpinned) {
    findings.push({
      code: 'reference.unpinned',
      level: 'warning',
      message: `The tag "latest" (or none) can point to another image tomorrow; pin a tag or a digest so that your server starts the image that was checked.`,
    });
  }
  const result = (
    verdict: Verdict,
    resolved?: ResolvedImage,
    facts?: ImageFacts,
    layerStats = { total: 0, fromCache: 0, bytesRead: 0 },
    inventory?: Inventory,
  ): StaticCheckResult => {
    progress.phase = 'done';
    progress.message =
      verdict === 'pass'
        ? 'The image can run jupyterhub-singleuser'
        : verdict === 'fail'
          ? 'The image cannot serve'
          : 'The check could not be made';
    report();
    log(`Verdict: ${verdict}`);
    return {
      reference: reference.normalized,
      digest: resolved?.digest,
      manifestDigest: resolved?.manifestDigest,
      platform: resolved?.platform ?? request.platform,
      verdict,
      findings,
      facts,
      inventory,
      layers: layerStats,
      durationMs: Date.now() - started,
    };
  };

  let resolved: ResolvedImage;
  const session = deps.registry.session(reference, request.credentials, request.signal);
  try {
    resolved = await session.resolve(parsePlatform(request.platform));
  } catch (err) {
    if (!(err instanceof RegistryError)) throw err;
    const { verdict, finding } = registryFinding(err);
    findings.push(finding);
    log(`Registry: ${err.message}`);
    return result(verdict);
  }
  log(
    `Digest ${resolved.digest}${resolved.manifestDigest !== resolved.digest ? ` (platform manifest ${resolved.manifestDigest})` : ''}, ${resolved.layers.length} layers, ${formatBytes(resolved.size)} compressed`,
  );

  // Read layers (some at once), apply them in order.
  progress.phase = 'layers';
  progress.layersTotal = resolved.layers.length;
  const indexes: Array<Promise<LayerIndex>> = [];
  const stats = { total: resolved.layers.length, fromCache: 0, bytesRead: 0 };
  // Asked only now, after this reader's own request for the manifest succeeded.
  const scope: LayerScope = !request.credentials ? null : `${reference.registry}/${reference.repository}|${request.access ?? 'credential'}`;
  const cached = await Promise.all(resolved.layers.map((layer) => deps.layers.get(layer.digest, scope)));
  progress.bytesTotal = resolved.layers.reduce((sum, layer, i) => sum + (cached[i] ? 0 : layer.size), 0);
  progress.message = `Reading ${resolved.layers.length} layers`;
  report();
  const limit = deps.concurrency ?? 3;
  const unpack = deps.unpack ?? unpackLimits(deps.registry.limits.image);
  const allowance = { entries: unpack.imageEntries, bytes: unpack.imageBytes };
  let running = 0;
  const waiting: Array<() => void> = [];
  const slot = async () => {
    if (running >= limit) await new Promise<void>((r) => waiting.push(r));
    running++;
  };
  const release = () => {
    running--;
    waiting.shift()?.();
  };
  const readLayer = async (layer: Descriptor, i: number): Promise<LayerIndex> => {
    const hit = cached[i];
    if (hit) {
      stats.fromCache++;
      // Known layers count towards the image's allowance as if they had been read.
      allowance.entries -= Object.keys(hit.entries).length;
      allowance.bytes -= hit.tarBytes;
      if (allowance.entries < 0 || allowance.bytes < 0)
        throw new UnpackLimitError(
          `The image has more than ${unpack.imageEntries.toLocaleString('en')} files or unpacks to more than ${Math.round(unpack.imageBytes / 1e9)} GB; larger ones are not checked.`,
        );
      log(`Layer ${i + 1}/${resolved.layers.length} ${layer.digest.slice(0, 19)}: already known`);
      return hit;
    }
    await slot();
    try {
      let seen = 0;
      const index = await indexLayer(
        await session.openBlob(layer),
        (bytes) => {
          progress.bytesRead += bytes - seen;
          stats.bytesRead += bytes - seen;
          seen = bytes;
          report();
        },
        { limits: unpack, image: allowance },
        { capture: deps.inventory !== false },
      );
      await deps.layers.put(layer.digest, scope, index);
      log(
        `Layer ${i + 1}/${resolved.layers.length} ${layer.digest.slice(0, 19)}: ${formatBytes(layer.size)}, ${Object.keys(index.entries).length} paths`,
      );
      return index;
    } finally {
      release();
    }
  };
  for (const [i, layer] of resolved.layers.entries()) indexes.push(readLayer(layer, i));
  // Every promise gets a handler at once, so that a failure in one does not go unobserved.
  const settled = Promise.allSettled(indexes);
  const fs = new MergedFilesystem();
  let uncaptured = 0;
  try {
    for (const pending of indexes) {
      const index = await pending;
      uncaptured += index.uncaptured ?? 0;
      fs.apply(index);
      progress.layersDone++;
      report();
    }
  } catch (err) {
    await settled;
    if (err instanceof RegistryError) {
      findings.push(registryFinding(err).finding);
      log(`Registry: ${err.message}`);
      return result('error', resolved, undefined, stats);
    }
    if (err instanceof UnpackLimitError) {
      findings.push({ code: 'layer.too_large', level: 'error', message: err.message });
      log(`Layer: ${err.message}`);
      return result('error', resolved, undefined, stats);
    }
    const message = err instanceof Error ? err.message : String(err);
    findings.push({
      code: 'layer.unreadable',
      level: 'error',
      message: `A layer of the image could not be read as a tar archive (${message}).`,
    });
    log(`Layer: ${message}`);
    return result('error', resolved, undefined, stats);
  }

  progress.phase = 'analyze';
  progress.message = 'Looking for jupyterhub-singleuser';
  report();
  const analysis = analyzeImage(fs, resolved.config, { policy: request.policy, hubVersion: request.hubVersion });
  findings.push(...analysis.findings);
  for (const f of analysis.findings) log(`${f.level}: ${f.code}: ${f.message}`);
  const inventory = deps.inventory === false ? undefined : extractInventory(fs, resolved.config, analysis.facts, { uncaptured });
  if (inventory) log(inventoryLine(inventory));
  return result(verdictOf(findings), resolved, analysis.facts, stats, inventory);
}

/** The inventory in one line of the check's log. */
function inventoryLine(inventory: Inventory): string {
  const parts = [
    inventory.python ? `Python ${inventory.python.version}` : 'no Python',
    `${inventory.pythonPackages.length} Python packages`,
    ...(inventory.condaPackages.length ? [`${inventory.condaPackages.length} conda packages`] : []),
    ...(inventory.osPackages ? [`${inventory.osPackages.packages.length} ${inventory.osPackages.manager} packages`] : []),
  ];
  return `Inventory: ${parts.join(', ')}${inventory.incomplete.length ? ` (partial: ${inventory.incomplete.join(' ')})` : ''}`;
}
