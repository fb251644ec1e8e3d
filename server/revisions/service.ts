/**
 * Revisions of images: recorded when a check ends on content the image did
 * not have (the first check, an edit, a rebuild, a moved tag), kept up to
 * the system's number, started, rolled back to, compared (with any image the
 * user may read) and exported for reproduction. A moved tag's new content is
 * read as a candidate check that becomes the image's only when its owner
 * accepts it; "keep the running one" pins the image to what it runs.
 */
import { auditEntry, type AuditEntry } from '../audit/store.js';
import type { BuildService } from '../builds/service.js';
import { dockerfileImages } from '../builds/dockerfile.js';
import type { QueueOptions } from '../checks/service.js';
import { isActive } from '../checks/status.js';
import type { CheckRow, CheckStore } from '../checks/store.js';
import { AppError, conflict, notFound } from '../errors.js';
import { inputError } from '../forms.js';
import type { AccessRules } from '../hub/access.js';
import type { HubIdentity } from '../hub/identity.js';
import type { ImageService, ImageView } from '../images/service.js';
import { candidatePending } from '../images/status.js';
import type { ImageRow, ImageStore } from '../images/store.js';
import type { Inventory } from '../inventory/schema.js';
import type { Logger } from '../log.js';
import { parseReference } from '../registry/reference.js';
import { notShared, type SharingService } from '../sharing/service.js';
import { DEFAULT_KEPT_REVISIONS, type System, type SystemCatalog } from '../systems/schema.js';
import { diffInventories, type InventoryDiff } from './diff.js';
import { environmentYml, pinDecisions, requirementsTxt, revisionRecord, type BuildRecord, type ExportSource } from './export.js';
import { AcceptInputSchema, launchDigest, pinnedReference, type Revision, type RevisionReason } from './schema.js';
import type { InventorySource } from './inventoryCache.js';
import type { RevisionStore } from './store.js';

/** A revision as lists show it: whether the image runs it, or its tag moved to it and it waits for the owner. */
export interface RevisionView extends Revision {
  running: boolean;
  pending: boolean;
}

/** An image's kept revisions and where it stands. */
export interface RevisionList {
  image: ImageView;
  /** How many the system keeps. */
  keep: number;
  /** Newest first: the newest `keep`, and the running and pending ones wherever they are. */
  revisions: RevisionView[];
  /** Older revisions no longer kept. */
  dropped: number;
  running: Revision | undefined;
  /** A moved tag's new content, read and waiting for the owner to accept it or keep the running one. */
  pending: Revision | undefined;
  /** The candidate check waiting (being read, or read), when there is one. */
  candidate: CheckRow | undefined;
}

/** What a tile says of an image's revisions. */
export interface RevisionSummary {
  /** The revision the image is at (its check's content); undefined while none is (changed, checking). */
  running: number | undefined;
  /** Whether that revision passed its check (the image starts it) or failed. */
  passed: boolean;
  newest: number;
  /** The image runs an older revision than its newest one. */
  rolledBack: boolean;
}

/** One side of a diff: an image (a revision of one's own, or what someone else's image runs now). */
export interface DiffSide {
  imageId: number;
  owner: string;
  name: string;
  /** The revision of the owner's own image; null for someone else's image (what it runs now). */
  revision: number | null;
  reference: string;
  digest: string;
  platform: string;
}

export interface DiffView {
  from: DiffSide;
  to: DiffSide;
  diff: InventoryDiff;
}

/** What the "changes" view of a moved tag shows: the new content against the running one. */
export interface ChangesView {
  list: RevisionList;
  /** Why there is no diff to show (nothing pending, still reading, a side without packages); undefined with a diff. */
  problem: string | undefined;
  diff: InventoryDiff | undefined;
}

/** An export, ready to send. */
export interface RevisionExport {
  filename: string;
  contentType: string;
  body: string;
}

export const EXPORT_FORMATS = ['requirements.txt', 'environment.yml', 'record.json'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** A side of a diff as asked: an image id, and a revision of one's own image (none: what it runs now). */
export interface DiffRequest {
  imageId: number;
  revision?: number | undefined;
}

export interface RevisionServiceDeps {
  store: RevisionStore;
  access: AccessRules;
  images: ImageService;
  imageStore: ImageStore;
  checks: Pick<CheckStore, 'get' | 'latestFor' | 'newestCandidates'>;
  /** Inventories by platform manifest digest and platform (inventory/store.ts, perhaps through inventoryCache.ts). */
  inventories: InventorySource;
  systems: SystemCatalog;
  /** The builds of an image, newest first, with what each pushed (for the revision a build made). */
  buildsOf: (owner: string, imageId: number) => Promise<Array<{ id: number; number: number; digest: string | null }>>;
  /** A build's inputs (never its token). */
  builds?: Pick<BuildService, 'get' | 'systemsFor'>;
  /** Queues a check of an image (checks/service.ts). */
  queueCheck: (owner: string, imageId: number, options?: QueueOptions) => Promise<CheckRow>;
  /** Whether a user may use someone else's image (shared or published). */
  sharing?: Pick<SharingService, 'usableBy'>;
  logger: Logger;
  now?: () => Date;
}

/** How long a moved tag's new content that could not be read waits before a launch has it read again. */
const RETRY_UNREADABLE_MS = 10 * 60_000;

/** The words for content whose packages were not recorded. */
function noInventory(what: string): AppError {
  return conflict(
    `The packages of ${what} were not recorded: it was checked before the service read them, or its check could not read the image. Check it again, then compare or export.`,
  );
}

/** The reference without its digest: what a tag move keeps. */
function unpinned(reference: string): string {
  const parsed = parseReference(reference);
  return `${parsed.registry}/${parsed.repository}${parsed.tag ? `:${parsed.tag}` : ''}`;
}

/** Why an image has this new content. */
export function reasonFor(
  newest: Pick<Revision, 'reference' | 'buildNumber'> | undefined,
  check: Pick<CheckRow, 'reference'>,
  build: { number: number } | undefined,
): RevisionReason {
  if (!newest) return 'first';
  if (build && build.number !== newest.buildNumber) return 'rebuilt';
  if (!parseReference(check.reference).digest && unpinned(check.reference) === unpinned(newest.reference)) return 'tag_moved';
  return 'edited';
}

/** The kept revisions among `all` (newest first): the newest `keep`, and those the image runs or waits for. */
export function keptRevisions(all: readonly Revision[], keep: number, alsoKept: ReadonlyArray<Revision | undefined>): Revision[] {
  const ids = new Set(alsoKept.flatMap((r) => (r ? [r.id] : [])));
  return all.filter((r, index) => index < keep || ids.has(r.id));
}

export class RevisionService {
  private readonly now: () => Date;

  constructor(private readonly deps: RevisionServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  // -- recording ------------------------------------------------------------

  /**
   * Records the content of an ended check as a revision of its image (a new
   * one for content the image did not have, else the newer result of the one
   * it had). Called by the check service when a check ends; never throws.
   */
  async recordCheck(checkId: number): Promise<void> {
    try {
      await this.record(checkId);
    } catch (err) {
      this.deps.logger.warn({ err, checkId }, 'could not record the revision of a check');
    }
  }

  private async record(checkId: number): Promise<void> {
    const check = await this.deps.checks.get(checkId);
    if (!check || check.imageId === null || !check.digest) return;
    if (check.status !== 'passed' && check.status !== 'failed') return;
    const imageId = check.imageId;
    const status = check.status;
    const digest = check.manifestDigest ?? check.digest;
    const build = (await this.deps.buildsOf(check.owner, imageId)).find(
      (b) => b.digest !== null && (b.digest === check.digest || b.digest === check.manifestDigest),
    );
    const now = this.now();
    await this.deps.store.transaction(async (store) => {
      if (!(await store.lockImage(imageId, check.owner))) return;
      const same = await store.byLaunchDigest(imageId, digest);
      if (same) return store.checkedAgain(same.id, check.id, status, now);
      const newest = await store.newest(imageId);
      await store.insert({
        imageId,
        owner: check.owner,
        reference: check.reference,
        digest: check.digest as string,
        manifestDigest: check.manifestDigest === check.digest ? null : check.manifestDigest,
        platform: check.platform,
        checkId: check.id,
        status,
        reason: reasonFor(newest, check, build),
        buildId: build?.id ?? null,
        buildNumber: build?.number ?? null,
        createdAt: check.finishedAt ?? now,
      });
    });
  }

  /**
   * A launch found the image's tag pointing at other content: it is read as a
   * candidate (without becoming the image's), once per content, so that the
   * owner sees what changed. Never throws: the launch is refused in any case.
   */
  async tagMoved(image: ImageRow, digest: string): Promise<void> {
    try {
      const [checks, candidates] = await Promise.all([
        this.deps.checks.latestFor(image.owner, [image.id]),
        this.deps.checks.newestCandidates(image.owner, [image.id]),
      ]);
      const candidate = candidates.get(image.id);
      const newer = candidate && candidate.id > (checks.get(image.id)?.id ?? 0);
      if (newer && (isActive(candidate.status) || candidate.digest === digest)) return;
      // One that could not be read is tried again after a while, not at every Start someone presses meanwhile.
      const ended = candidate?.finishedAt?.getTime() ?? 0;
      if (newer && candidate.digest === null && this.now().getTime() - ended < RETRY_UNREADABLE_MS) return;
      await this.deps.queueCheck(image.owner, image.id, { candidate: { reference: image.reference } });
    } catch (err) {
      this.deps.logger.info({ err, imageId: image.id }, 'the new content of a moved tag was not queued for reading');
    }
  }

  // -- reading ----------------------------------------------------------------

  /** `owner`'s image with its kept revisions, for the owner or the spawner hook. */
  async list(actor: HubIdentity, owner: string, imageId: number): Promise<RevisionList> {
    this.deps.access.readImagesOf(actor, owner);
    return this.state(await this.deps.images.load(owner, imageId));
  }

  /** The kept revisions of all of `owner`'s images (the spawn form offers them). */
  async listAll(actor: HubIdentity, owner: string): Promise<RevisionList[]> {
    this.deps.access.readImagesOf(actor, owner);
    const images = await this.deps.images.list(actor, owner);
    const ids = images.map((i) => i.id);
    const [revisions, checks, candidates] = await Promise.all([
      this.deps.store.forImages(owner, ids),
      this.deps.checks.latestFor(owner, ids),
      this.deps.checks.newestCandidates(owner, ids),
    ]);
    const keeps = new Map<string, number>();
    for (const image of images) if (!keeps.has(image.system.slug)) keeps.set(image.system.slug, await this.keepOn(image.system.slug));
    return images.map((image) =>
      this.listOf(
        image,
        revisions.get(image.id) ?? [],
        checks.get(image.id),
        candidates.get(image.id),
        keeps.get(image.system.slug) ?? DEFAULT_KEPT_REVISIONS,
      ),
    );
  }

  /** What each tile says of its image's revisions (images without any are absent). */
  async summaries(
    owner: string,
    images: ReadonlyArray<Pick<ImageView, 'id' | 'reference' | 'system'>>,
  ): Promise<Map<number, RevisionSummary>> {
    const ids = images.map((i) => i.id);
    const [revisions, checks] = await Promise.all([this.deps.store.forImages(owner, ids), this.deps.checks.latestFor(owner, ids)]);
    const result = new Map<number, RevisionSummary>();
    for (const image of images) {
      const list = revisions.get(image.id) ?? [];
      const newest = list[0];
      if (!newest) continue;
      const running = this.runningOf(list, checks.get(image.id), { reference: image.reference, system: image.system.slug });
      result.set(image.id, {
        running: running?.number,
        passed: running?.status === 'passed',
        newest: newest.number,
        rolledBack: running !== undefined && running.number < newest.number,
      });
    }
    return result;
  }

  /** One kept revision of `owner`'s image; a revision no longer kept is refused in words. */
  async get(actor: HubIdentity, owner: string, imageId: number, number: number): Promise<{ list: RevisionList; revision: RevisionView }> {
    const list = await this.list(actor, owner, imageId);
    return { list, revision: this.keptIn(list, number) };
  }

  /** A moved tag's new content against the running revision, with what changed. */
  async changes(actor: HubIdentity, owner: string, imageId: number): Promise<ChangesView> {
    const list = await this.list(actor, owner, imageId);
    const { candidate, pending, running, image } = list;
    if (!candidate)
      return { list, problem: `Nothing waits for you: the tag of "${image.name}" has not moved since its check.`, diff: undefined };
    if (isActive(candidate.status))
      return { list, problem: 'The new content is being read; this page shows what changed once it is.', diff: undefined };
    if (!pending) {
      const reason = candidate.findings.find((f) => f.level === 'error')?.message ?? 'see its check';
      return { list, problem: `The new content of the tag could not be read: ${reason}`, diff: undefined };
    }
    if (!running) return { list, problem: `"${image.name}" runs no checked revision to compare with.`, diff: undefined };
    const [from, to] = await Promise.all([this.inventoryOf(running), this.inventoryOf(pending)]);
    if (!from) return { list, problem: noInventory(`revision ${running.number}`).message, diff: undefined };
    if (!to) return { list, problem: noInventory(`revision ${pending.number}`).message, diff: undefined };
    return { list, problem: undefined, diff: diffInventories(from, to) };
  }

  /**
   * The diff of two images `user` may read: revisions of their own images, or
   * what an image shared with them or published runs now. Any side they may
   * not read is answered as an image that is not theirs (404, the same words
   * for every reason).
   */
  async diff(actor: HubIdentity, user: string, from: DiffRequest, to: DiffRequest): Promise<DiffView> {
    this.deps.access.readImagesOf(actor, user);
    // Two revisions of one image (the usual case) read the image and its revisions once.
    const lists = new Map<number, Promise<RevisionList>>();
    const [a, b] = await Promise.all([this.side(actor, user, from, lists), this.side(actor, user, to, lists)]);
    return { from: a.side, to: b.side, diff: diffInventories(a.inventory, b.inventory) };
  }

  // -- exports ----------------------------------------------------------------

  /** A kept revision as `requirements.txt`, `environment.yml` or a JSON record. */
  async exportRevision(actor: HubIdentity, owner: string, imageId: number, number: number, format: ExportFormat): Promise<RevisionExport> {
    const { list, revision } = await this.get(actor, owner, imageId, number);
    const source = await this.exportSource(actor, list.image, revision);
    const inventory = await this.inventoryOf(revision);
    // An image's name is free text: the file name keeps what any file system and a Content-Disposition header take.
    const base = `${list.image.name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80) || 'image'}-r${revision.number}`;
    if (format === 'record.json') {
      return {
        filename: `${base}.json`,
        contentType: 'application/json; charset=utf-8',
        body: `${JSON.stringify(revisionRecord(source, inventory), null, 2)}\n`,
      };
    }
    if (!inventory) throw noInventory(`revision ${revision.number} of "${list.image.name}"`);
    if (format === 'environment.yml')
      return {
        filename: `${base}-environment.yml`,
        contentType: 'application/yaml; charset=utf-8',
        body: environmentYml(source, inventory),
      };
    return { filename: `${base}-requirements.txt`, contentType: 'text/plain; charset=utf-8', body: requirementsTxt(source, inventory) };
  }

  /**
   * The build form filled in from a kept revision: base image + packages with
   * its pins; the base is the researcher's choice, the closest one suggested.
   */
  async buildFrom(
    actor: HubIdentity,
    owner: string,
    imageId: number,
    number: number,
  ): Promise<{ values: Record<string, string>; suggestion: string | undefined; notice: string }> {
    const { list, revision } = await this.get(actor, owner, imageId, number);
    const inventory = await this.inventoryOf(revision);
    if (!inventory) throw noInventory(`revision ${revision.number} of "${list.image.name}"`);
    const source = await this.exportSource(actor, list.image, revision);
    const pip = requirementsTxt(source, inventory);
    const systems = (await this.deps.builds?.systemsFor(actor)) ?? [];
    const system = systems.find((s) => s.slug === list.image.system.slug) ?? systems[0];
    const suggestion = system ? closestBase(system, revision, source.build) : undefined;
    const decisions = pinDecisions(inventory);
    const pinned = decisions.filter((d) => d.notPinned === undefined).length;
    return {
      values: {
        name: `${list.image.name}-r${revision.number}`.slice(0, 64).replace(/[._-]+$/, ''),
        system: system?.slug ?? '',
        mode: 'packages',
        base: suggestion ?? '',
        pip,
        conda: inventory.condaPackages.length > 0 ? environmentYml(source, inventory) : '',
        apt: '',
      },
      suggestion,
      notice:
        `Filled in from revision ${revision.number} of "${list.image.name}": ${pinned} of ${decisions.length} Python distributions pinned` +
        `${decisions.length > pinned ? ' (the others are listed as comments, with why)' : ''}. ` +
        (suggestion
          ? `Base image: ${suggestion} is suggested as the closest; choose another if it fits better.`
          : 'Choose the base image closest to it.'),
    };
  }

  // -- changing ---------------------------------------------------------------

  /**
   * Rolls the image back (or forward) to a kept revision that passed: the
   * image then points at that content by digest, and a check of it is queued
   * (under today's rules; a result for the same content and rules is reused
   * without a download). Publications of other content are withdrawn, as by
   * any change of the image.
   */
  async rollback(
    actor: HubIdentity,
    owner: string,
    imageId: number,
    number: number,
  ): Promise<{ revision: Revision; check: CheckRow | undefined }> {
    this.deps.access.writeImagesOf(actor, owner);
    const { list, revision } = await this.get(actor, owner, imageId, number);
    if (revision.running) return { revision, check: undefined };
    if (revision.status !== 'passed') {
      throw conflict(`Revision ${revision.number} of "${list.image.name}" failed its check: roll back to a revision that passed.`);
    }
    const reference = pinnedReference(revision);
    await this.pin(actor, list.image, reference, 'image.rollback', { revision: revision.number, reference });
    return { revision, check: await this.deps.queueCheck(owner, imageId) };
  }

  /** The owner accepts a moved tag's new content: its check becomes the image's. */
  async accept(actor: HubIdentity, owner: string, imageId: number, raw: unknown): Promise<Revision> {
    this.deps.access.writeImagesOf(actor, owner);
    const parsed = AcceptInputSchema.safeParse(raw ?? {});
    if (!parsed.success) throw inputError(parsed.error, 'revision');
    const list = await this.list(actor, owner, imageId);
    const { candidate, pending, image } = list;
    if (!candidate) throw conflict(`Nothing waits to be accepted: the tag of "${image.name}" has not moved since its check.`);
    if (isActive(candidate.status)) throw conflict('The new content is still being read; accept it once it is.');
    if (!pending) throw conflict('The new content of the tag could not be read, so there is nothing to accept. Look again later.');
    if (parsed.data.revision !== undefined && parsed.data.revision !== pending.number) {
      throw conflict(
        `The tag moved again since you looked: it is now revision ${pending.number}, not ${parsed.data.revision}. Look at what changed again before you accept it.`,
        { field: 'revision' },
      );
    }
    const entry = auditEntry(
      actor,
      'image.accept',
      { type: 'image', id: String(imageId) },
      { revision: pending.number, digest: launchDigest(pending) },
    );
    const follow = candidate.reference !== image.reference ? candidate.reference : undefined;
    if (!(await this.deps.store.adoptCandidate(owner, imageId, candidate.id, follow, entry, this.now()))) {
      throw conflict('The new content changed while you looked; look at what changed again.');
    }
    return pending;
  }

  /** The owner keeps the running revision: the image is pinned to it, so that the moved tag changes nothing. */
  async keep(actor: HubIdentity, owner: string, imageId: number): Promise<{ revision: Revision; check: CheckRow }> {
    this.deps.access.writeImagesOf(actor, owner);
    const list = await this.list(actor, owner, imageId);
    if (!list.candidate) throw conflict(`Nothing waits for you: the tag of "${list.image.name}" has not moved since its check.`);
    const running = list.running;
    if (!running) throw conflict(`"${list.image.name}" runs no checked revision to keep.`);
    const reference = pinnedReference(running);
    await this.pin(actor, list.image, reference, 'image.keep', { revision: running.number, reference });
    return { revision: running, check: await this.deps.queueCheck(owner, imageId) };
  }

  /** Reads the content the image's tag points at now, without making it the image's (a candidate). */
  async lookForNew(actor: HubIdentity, owner: string, imageId: number): Promise<CheckRow> {
    this.deps.access.writeImagesOf(actor, owner);
    const list = await this.list(actor, owner, imageId);
    const reference = parseReference(list.image.reference);
    if (!reference.tag) {
      throw conflict(`"${list.image.name}" names its content by digest alone: there is no tag whose new content could be read.`);
    }
    if (list.candidate && isActive(list.candidate.status)) return list.candidate;
    return this.deps.queueCheck(owner, imageId, { candidate: { reference: unpinned(list.image.reference) } });
  }

  /**
   * What a launch of revision `number` of `image` starts: the revision's check,
   * with the image pinned to its content. Everything else a launch holds the
   * image to (today's rules) applies to it as to any launch. Refused in words
   * when the revision is not kept, failed, or its check is gone.
   */
  async launchTarget(
    image: ImageRow,
    check: CheckRow | undefined,
    system: System,
    number: number,
  ): Promise<{ image: ImageRow; check: CheckRow; revision: Revision }> {
    const all = await this.deps.store.forImage(image.id);
    const keep = system.keptRevisions ?? DEFAULT_KEPT_REVISIONS;
    const revision = all.find((r) => r.number === number);
    if (!revision) throw conflict(`"${image.name}" has no revision ${number}. Choose one of its revisions in custom images.`);
    const running = this.runningOf(all, check, image);
    if (!keptRevisions(all, keep, [running]).includes(revision)) {
      throw conflict(
        `Revision ${number} of "${image.name}" is no longer kept: ${system.displayName} keeps the ${keep} newest revisions of an image. Start a newer revision, or the image itself.`,
      );
    }
    if (revision.status !== 'passed')
      throw conflict(`Revision ${number} of "${image.name}" failed its check; start a revision that passed.`);
    const checked = revision.checkId === null ? undefined : await this.deps.checks.get(revision.checkId);
    if (!checked) throw conflict(`The check of revision ${number} of "${image.name}" is gone; roll back to it to check it again.`);
    const reference = pinnedReference(revision);
    return {
      // Named so that every refusal of the launch says which revision it is about.
      image: { ...image, name: `${image.name} (revision ${number})`, reference },
      check: { ...checked, reference },
      revision,
    };
  }

  // -- parts ------------------------------------------------------------------

  private async pin(
    actor: HubIdentity,
    image: ImageView,
    reference: string,
    action: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    const now = this.now();
    const entry: AuditEntry = auditEntry(actor, action, { type: 'image', id: String(image.id) }, { ...details, from: image.reference });
    await this.deps.imageStore.transaction(async (store) => {
      await store.setReference(image.owner, image.id, reference, now);
      await store.audit(entry, now);
    });
  }

  private async state(image: ImageView): Promise<RevisionList> {
    const [all, checks, candidates, keep] = await Promise.all([
      this.deps.store.forImage(image.id),
      this.deps.checks.latestFor(image.owner, [image.id]),
      this.deps.checks.newestCandidates(image.owner, [image.id]),
      this.keepOn(image.system.slug),
    ]);
    return this.listOf(image, all, checks.get(image.id), candidates.get(image.id), keep);
  }

  private listOf(
    image: ImageView,
    all: Revision[],
    check: CheckRow | undefined,
    candidate: CheckRow | undefined,
    keep: number,
  ): RevisionList {
    const running = this.runningOf(all, check, { reference: image.reference, system: image.system.slug });
    const waiting = candidatePending(check, candidate) ? candidate : undefined;
    const waitingDigest = waiting && !isActive(waiting.status) && waiting.digest ? (waiting.manifestDigest ?? waiting.digest) : undefined;
    const pending = waitingDigest ? all.find((r) => launchDigest(r) === waitingDigest) : undefined;
    const kept = keptRevisions(all, keep, [running, pending]);
    return {
      image,
      keep,
      revisions: kept.map((r) => ({ ...r, running: r.id === running?.id, pending: r.id === pending?.id })),
      dropped: all.length - kept.length,
      running,
      pending,
      candidate: waiting,
    };
  }

  /** The revision the image runs: that of its check, when the check ended and is of the image as it is. */
  private runningOf(
    all: readonly Revision[],
    check: CheckRow | undefined,
    image: { reference: string; system: string },
  ): Revision | undefined {
    if (!check || isActive(check.status) || !check.digest) return undefined;
    if (check.reference !== image.reference || check.system !== image.system) return undefined;
    const digest = check.manifestDigest ?? check.digest;
    return all.find((r) => launchDigest(r) === digest);
  }

  private keptIn(list: RevisionList, number: number): RevisionView {
    const found = list.revisions.find((r) => r.number === number);
    if (found) return found;
    if (number <= list.revisions.length + list.dropped) {
      throw conflict(
        `Revision ${number} of "${list.image.name}" is no longer kept: its system keeps the ${list.keep} newest revisions of an image.`,
        { field: 'revision' },
      );
    }
    throw notFound('Revision');
  }

  private async keepOn(slug: string): Promise<number> {
    return (await this.deps.systems.get(slug))?.keptRevisions ?? DEFAULT_KEPT_REVISIONS;
  }

  private inventoryOf(revision: Pick<Revision, 'digest' | 'manifestDigest' | 'platform'>): Promise<Inventory | undefined> {
    return this.deps.inventories.get(launchDigest(revision), revision.platform);
  }

  private async exportSource(actor: HubIdentity, image: ImageView, revision: Revision): Promise<ExportSource> {
    const check = revision.checkId === null ? undefined : await this.deps.checks.get(revision.checkId);
    return {
      imageName: image.name,
      owner: image.owner,
      revision,
      checkedAt: check?.finishedAt ?? null,
      build: revision.buildNumber === null ? null : await this.buildRecord(actor, image, revision.buildNumber),
    };
  }

  private async buildRecord(actor: HubIdentity, image: ImageView, number: number): Promise<BuildRecord | null> {
    const details = await this.deps.builds?.get(actor, image.owner, image.id, number).catch(() => undefined);
    if (!details) return null;
    const { inputs } = details;
    return {
      number,
      mode: inputs.mode,
      base: inputs.base,
      pip: inputs.pip,
      conda: inputs.conda,
      apt: inputs.apt,
      dockerfile: inputs.dockerfile,
      files: inputs.files,
      git: inputs.gitUrl ? { url: inputs.gitUrl, ref: inputs.gitRef, commit: inputs.gitCommit } : null,
    };
  }

  /** One side of a diff, with its inventory; any side `user` may not read is an image that is not theirs. */
  private async side(
    actor: HubIdentity,
    user: string,
    request: DiffRequest,
    lists: Map<number, Promise<RevisionList>>,
  ): Promise<{ side: DiffSide; inventory: Inventory }> {
    const image = await this.deps.imageStore.getById(request.imageId);
    if (image && image.owner === user) {
      if (!lists.has(image.id))
        lists.set(
          image.id,
          this.deps.images.load(user, image.id).then((view) => this.state(view)),
        );
      const list = await (lists.get(image.id) as Promise<RevisionList>);
      const revision = request.revision === undefined ? (list.running ?? list.revisions[0]) : this.keptIn(list, request.revision);
      if (!revision) throw conflict(`"${image.name}" has no checked content to compare yet: check it first.`);
      const inventory = await this.inventoryOf(revision);
      if (!inventory) throw noInventory(`revision ${revision.number} of "${image.name}"`);
      const side = { imageId: image.id, owner: image.owner, name: image.name, revision: revision.number, reference: revision.reference };
      return { side: { ...side, digest: launchDigest(revision), platform: revision.platform }, inventory };
    }
    // Someone else's image: what it runs now, if it is shared with the user or published; its revisions stay its owner's.
    if (!image || request.revision !== undefined || !this.deps.sharing) throw notShared();
    const check = (await this.deps.checks.latestFor(image.owner, [image.id])).get(image.id);
    try {
      await this.deps.sharing.usableBy(actor, user, image, check);
    } catch (err) {
      if (err instanceof AppError && err.status < 500) throw notShared();
      throw err;
    }
    const digest =
      check && check.status === 'passed' && check.reference === image.reference ? (check.manifestDigest ?? check.digest) : null;
    if (!check || !digest) throw conflict(`"${image.name}" of ${image.owner} has no checked content to compare.`);
    const inventory = await this.deps.inventories.get(digest, check.platform);
    if (!inventory) throw noInventory(`"${image.name}" of ${image.owner}`);
    return {
      side: {
        imageId: image.id,
        owner: image.owner,
        name: image.name,
        revision: null,
        reference: image.reference,
        digest,
        platform: check.platform,
      },
      inventory,
    };
  }
}

/**
 * The system's base image closest to a revision, for "Build from this": the
 * base its build started from, else one of the same repository as the
 * revision or its Dockerfile's first image; undefined when none is close.
 */
export function closestBase(system: System, revision: Pick<Revision, 'reference'>, build: BuildRecord | null): string | undefined {
  const bases = system.build.baseImages;
  if (build?.mode === 'packages' && build.base) {
    const same = bases.find((b) => b.image === build.base);
    if (same) return same.name;
  }
  const repositoryOf = (image: string) => {
    try {
      const parsed = parseReference(image);
      return `${parsed.registry}/${parsed.repository}`;
    } catch {
      return undefined;
    }
  };
  const wanted = new Set([repositoryOf(revision.reference)]);
  if (build?.mode === 'dockerfile')
    for (const { image } of dockerfileImages(build.dockerfile).images.slice(0, 1)) wanted.add(repositoryOf(image));
  if (build?.base) wanted.add(repositoryOf(build.base));
  return bases.find((b) => wanted.has(repositoryOf(b.image)))?.name;
}
