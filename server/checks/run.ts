/**
 * One check job, step by step: the digest by HEAD (a result of the same
 * digest, policy, repository and access is reused), else the image read from
 * its registry (the static check), then, with a Docker engine, the image
 * started as its server would be (the run check); a passed image on a Docker
 * system is kept in the engine for a fast Start. Every step says what it does
 * in the check's log.
 */
import type { Finding } from '../inspect/analyze.js';
import type { ImageService } from '../images/service.js';
import type { PullService } from '../pulls/service.js';
import type { RegistryClient, RegistryCredentials } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { parseReference, registryAuthKey, type ImageReference } from '../registry/reference.js';
import type { DockerEngine } from '../runner/engine.js';
import { CHECK_ID_LABEL, DEPLOYMENT_LABEL, runCheck, type RunLimits } from '../runner/runCheck.js';
import type { Keyring } from '../secrets/keyring.js';
import { runAsFor } from '../systems/runAs.js';
import { registryAllowed, type System, type SystemCatalog } from '../systems/schema.js';
import type { LayerIndexCache } from './layerCache.js';
import type { InventoryStore } from '../inventory/store.js';
import type { CheckRecorder } from './recorder.js';
import { registryFinding, runStaticCheck, type StaticCheckResult } from './staticCheck.js';
import type { CheckStatus } from './status.js';
import { PUBLIC_ACCESS, type CheckRow, type CheckStore } from './store.js';

/** What a check job needs from the service around it. */
export interface CheckRunDeps {
  store: CheckStore;
  images: ImageService;
  systems: SystemCatalog;
  registry: RegistryClient;
  layers: LayerIndexCache;
  inventories: Pick<InventoryStore, 'has' | 'put'>;
  keyring: Pick<Keyring, 'fingerprint'>;
  /** Undefined when no Docker engine is configured: the run check is skipped. */
  engine?: DockerEngine | undefined;
  runLimits: RunLimits;
  pullTimeoutMs?: number | undefined;
  keepPulledImages: boolean;
  pulls?: PullService | undefined;
  hubVersion: () => Promise<string | undefined>;
}

/** What the result was read with: who may reuse it. */
interface Scope {
  repository: string;
  access: string;
}

export class CheckRun {
  private readonly log: (line: string) => void;

  constructor(
    private readonly deps: CheckRunDeps,
    private readonly job: CheckRow,
    private readonly record: CheckRecorder,
    private readonly signal: AbortSignal,
  ) {
    this.log = record.log;
  }

  /** Runs the job to its result; never throws (an unexpected failure is an `error` result). */
  async run(): Promise<CheckStatus> {
    try {
      return await this.steps();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log(`Unexpected: ${message}`);
      return this.finish('error', [{ code: 'check.failed', level: 'error', message: `The check could not be made: ${message}` }]);
    }
  }

  private async steps(): Promise<CheckStatus> {
    const { job } = this;
    const system = await this.deps.systems.get(job.system);
    if (!system)
      return this.finish('error', [{ code: 'system.missing', level: 'error', message: `The system ${job.system} no longer exists.` }]);
    const reference = parseReference(job.reference);
    // The system's registry patterns may have changed since the image was saved.
    if (!registryAllowed(system.allowedRegistries, reference.registry, reference.repository)) {
      this.log('The registry is not allowed on this system; it was not contacted.');
      return this.finish('failed', [
        {
          code: 'registry.not_allowed',
          level: 'error',
          message: `${system.displayName} does not offer images from ${reference.registry}/${reference.repository}; allowed: ${system.allowedRegistries.join(', ')}.`,
        },
      ]);
    }
    // Saved before the rule, or before an admin made this a push path: refused before any registry hears of it.
    const notYours = await this.deps.images.builtImageProblem(reference, job.owner);
    if (notYours) {
      this.log("The image is another user's build; the registry was not contacted.");
      return this.finish('failed', [{ code: 'registry.not_yours', level: 'error', message: notYours }]);
    }
    const credentials = job.imageId === null ? undefined : await this.deps.images.pullCredentials(job.owner, job.imageId, reference);
    const scope = this.scopeOf(reference, credentials);

    // HEAD first: a digest checked before is not downloaded again.
    this.log(`Asking ${reference.registry} for ${reference.normalized}`);
    this.record.report({ phase: 'resolve', message: `Asking ${reference.registry} for ${reference.normalized}` });
    let digest: string | undefined;
    try {
      digest = await this.deps.registry.session(reference, credentials, this.signal).headDigest({ fresh: true });
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      const { verdict, finding } = registryFinding(err);
      this.log(`Registry: ${err.message}`);
      return this.finish(verdict === 'fail' ? 'failed' : 'error', [finding]);
    }
    if (digest) {
      const previous = await this.deps.store.reusable({
        digest,
        platform: system.platform,
        policyHash: job.policyHash,
        kind: job.kind,
        ...scope,
      });
      // Its findings, never its log: that is another check's (perhaps another user's) output. A result
      // from before inventories were kept is not reused: the image is read once more to record one.
      if (previous && (await this.hasInventory(previous))) {
        this.log(`${reference.normalized} is ${digest}, checked before with the same policy and access: the result is reused.`);
        const stored = {
          digest: previous.digest,
          manifestDigest: previous.manifestDigest,
          facts: previous.facts,
          kind: previous.kind,
          reusedFrom: previous.reusedFrom ?? previous.id,
          ...scope,
        };
        if (previous.status === 'passed') return this.passed(system, reference, previous.findings, stored);
        return this.finish(previous.status, previous.findings, stored);
      }
    }

    const result = await runStaticCheck(
      { registry: this.deps.registry, layers: this.deps.layers },
      {
        reference,
        platform: system.platform,
        policy: system.policy,
        credentials,
        access: scope.access,
        hubVersion: await this.deps.hubVersion(),
        onProgress: this.record.report,
        log: this.log,
        signal: this.signal,
      },
    );
    const stored = {
      digest: result.digest ?? null,
      manifestDigest: result.manifestDigest ?? null,
      platform: result.platform,
      facts: result.facts ?? null,
      ...scope,
    };
    await this.keepInventory(result);
    if (result.verdict !== 'pass') return this.finish(result.verdict === 'fail' ? 'failed' : 'error', result.findings, stored);
    const engine = this.deps.engine;
    if (job.kind === 'static' || !engine) {
      const skipped: Finding = {
        code: 'run.skipped',
        level: 'info',
        message: 'No Docker engine is configured here, so the image was not started; the check read it from its registry only.',
      };
      return this.passed(system, reference, [...result.findings, skipped], stored);
    }
    return this.start(engine, system, reference, credentials, result, stored);
  }

  /** The run check: the image started as the spawner would, as the user the server will run as. */
  private async start(
    engine: DockerEngine,
    system: System,
    reference: ImageReference,
    credentials: RegistryCredentials | undefined,
    result: StaticCheckResult,
    stored: Partial<CheckRow>,
  ): Promise<CheckStatus> {
    const findings = [...result.findings];
    const pinned = `${reference.registry}/${reference.repository}@${result.manifestDigest ?? result.digest}`;
    const runAs = runAsFor(system.policy, result.facts);
    this.record.report({ phase: 'layers', message: `Pulling ${pinned}` });
    let run;
    try {
      // The engine connects by itself: the registry's address is held to the same rule first.
      await this.deps.registry.assertEngineMayPull(reference.registry);
      run = await runCheck(engine, {
        image: pinned,
        auth: credentials ? { ...credentials, serveraddress: registryAuthKey(reference.registry) } : undefined,
        user: `${runAs.uid}:${runAs.gid}`,
        limits: this.deps.runLimits,
        pullTimeoutMs: this.deps.pullTimeoutMs,
        signal: this.signal,
        labels: { [CHECK_ID_LABEL]: String(this.job.id), [DEPLOYMENT_LABEL]: await this.deps.store.deploymentId() },
        onPull: (p) => this.record.report({ message: `Pulling: ${p.status}`, pulledBytes: p.current, pullTotal: p.total }),
        log: this.log,
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log(`Docker: ${message}`);
      findings.push({ code: 'run.engine', level: 'error', message: `The image could not be started for the run check: ${message}` });
      return this.finish('error', findings, stored);
    }
    findings.push(...run.findings);
    const ran = { ...stored, kind: 'full' as const };
    const failed = run.findings.some((f) => f.level === 'error');
    // A passing image the spawner will start stays in the engine for it; others go unless the admin keeps them.
    const keep = !failed && system.spawner === 'docker' && this.deps.pulls !== undefined;
    if (run.pulled && !keep && !this.deps.keepPulledImages) await engine.removeImage(pinned).catch(() => undefined);
    if (failed) return this.finish('failed', findings, ran);
    return this.passed(system, reference, findings, ran, run.pulled);
  }

  /** A passed image on a Docker system is pulled into the engine (or recorded there, if the run check pulled it) for a fast start. */
  private async passed(
    system: System,
    reference: ImageReference,
    findings: Finding[],
    stored: Partial<CheckRow>,
    pulledByRun?: boolean,
  ): Promise<CheckStatus> {
    const digest = stored.manifestDigest ?? stored.digest;
    const pulls = this.deps.pulls;
    if (this.job.imageId !== null && digest && system.spawner === 'docker' && pulls) {
      const target = { owner: this.job.owner, imageId: this.job.imageId, reference, digest };
      await (pulledByRun === undefined ? pulls.request(target) : pulls.present(target, pulledByRun)).catch((err: unknown) => {
        this.log(`Could not prepare the image for a fast start (${err instanceof Error ? err.message : String(err)}); Start will pull it.`);
      });
    }
    return this.finish('passed', findings, stored);
  }

  /** The kind stored is what ran here, not what was asked: a replica without an engine makes a static check. */
  private finish(status: CheckStatus, findings: Finding[], extra: Partial<CheckRow> = {}): Promise<CheckStatus> {
    return this.record.finish(status, findings, { kind: 'static', ...extra });
  }

  /** Whether the inventory of a previous result's digest is kept. */
  private async hasInventory(previous: CheckRow): Promise<boolean> {
    const digest = previous.manifestDigest ?? previous.digest;
    return digest !== null && (await this.deps.inventories.has(digest, previous.platform));
  }

  /**
   * Keeps what the image holds under its platform manifest's digest. The
   * check's verdict does not depend on it: a failure to store is logged.
   */
  private async keepInventory(result: StaticCheckResult): Promise<void> {
    const digest = result.manifestDigest ?? result.digest;
    if (!result.inventory || !digest) return;
    try {
      await this.deps.inventories.put(digest, result.platform, result.inventory);
    } catch (err) {
      this.log(
        `The package inventory could not be stored (${err instanceof Error ? err.message : String(err)}); the next check records it.`,
      );
    }
  }

  /** Which credential read the image, never the credential itself. */
  private scopeOf(reference: ImageReference, credentials: RegistryCredentials | undefined): Scope {
    const repository = `${reference.registry}/${reference.repository}`;
    if (!credentials) return { repository, access: PUBLIC_ACCESS };
    return {
      repository,
      access: `credential:${this.deps.keyring.fingerprint(`${reference.registry}\u0000${credentials.username}\u0000${credentials.password}`)}`,
    };
  }
}
