/**
 * Rows of `built_manifests`, `data_volumes`, `volume_launches` and
 * `data_removal_requests`, through knex: what the clean-up knows of the
 * site registry and the engines' data volumes, and what the quotas count.
 */
import type { Knex } from 'knex';
import { writeAudit, type AuditEntry } from '../audit/store.js';
import { parseReference } from '../registry/reference.js';
import { fromJson, toDate, toDateOrNull } from '../store/rows.js';

type Row = Record<string, unknown>;

/** A blob of a manifest, as the manifest states it. */
export interface Blob {
  digest: string;
  size: number;
}

export const MANIFEST_STATUSES = ['kept', 'deleting', 'deleted'] as const;
export type ManifestStatus = (typeof MANIFEST_STATUSES)[number];

/** A manifest a build pushed to a site registry. */
export interface BuiltManifestRow {
  id: number;
  /** registry/repository */
  repository: string;
  digest: string;
  owner: string;
  system: string;
  imageId: number;
  imageName: string;
  buildNumber: number;
  pushedAt: Date;
  imageDeletedAt: Date | null;
  unusedSince: Date | null;
  blobs: Blob[] | null;
  bytes: number | null;
  lastLaunchedAt: Date | null;
  status: ManifestStatus;
  deleteRun: number | null;
  deletedAt: Date | null;
  message: string | null;
}

/** `registry/repository@digest`: how manifests are named across the clean-up's rules. */
export function manifestKey(repository: string, digest: string): string {
  return `${repository}@${digest}`;
}

function manifestFromRow(r: Row): BuiltManifestRow {
  return {
    id: Number(r.id),
    repository: String(r.repository),
    digest: String(r.digest),
    owner: String(r.owner),
    system: String(r.system),
    imageId: Number(r.image_id),
    imageName: String(r.image_name),
    buildNumber: Number(r.build_number),
    pushedAt: toDate(r.pushed_at),
    imageDeletedAt: toDateOrNull(r.image_deleted_at),
    unusedSince: toDateOrNull(r.unused_since),
    blobs: r.blobs === null || r.blobs === undefined ? null : fromJson<Blob[]>(r.blobs),
    bytes: r.bytes === null || r.bytes === undefined ? null : Number(r.bytes),
    lastLaunchedAt: toDateOrNull(r.last_launched_at),
    status: String(r.status) as ManifestStatus,
    deleteRun: r.delete_run === null || r.delete_run === undefined ? null : Number(r.delete_run),
    deletedAt: toDateOrNull(r.deleted_at),
    message: r.message === null || r.message === undefined ? null : String(r.message),
  };
}

export type VolumeStatus = 'present' | 'removing' | 'removed' | 'gone';
export type OrphanReason = 'user_removed' | 'system_removed' | 'user_asked';

/** A data volume the service made, on one engine. */
export interface DataVolumeRow {
  id: number;
  engine: string;
  name: string;
  user: string;
  system: string;
  bytes: number | null;
  inUse: boolean;
  firstSeenAt: Date;
  seenAt: Date;
  orphanedAt: Date | null;
  orphanReason: OrphanReason | null;
  keptBy: string | null;
  keptAt: Date | null;
  status: VolumeStatus;
  removeRun: number | null;
  removedAt: Date | null;
}

function volumeFromRow(r: Row): DataVolumeRow {
  return {
    id: Number(r.id),
    engine: String(r.engine),
    name: String(r.name),
    user: String(r.user_name),
    system: String(r.system),
    bytes: r.bytes === null || r.bytes === undefined ? null : Number(r.bytes),
    inUse: Boolean(r.in_use),
    firstSeenAt: toDate(r.first_seen_at),
    seenAt: toDate(r.seen_at),
    orphanedAt: toDateOrNull(r.orphaned_at),
    orphanReason: (r.orphan_reason ?? null) as OrphanReason | null,
    keptBy: r.kept_by === null || r.kept_by === undefined ? null : String(r.kept_by),
    keptAt: toDateOrNull(r.kept_at),
    status: String(r.status) as VolumeStatus,
    removeRun: r.remove_run === null || r.remove_run === undefined ? null : Number(r.remove_run),
    removedAt: toDateOrNull(r.removed_at),
  };
}

/** Statements a list of ids is cut into: far below SQLite's and PostgreSQL's limits on bound values. */
const CHUNK = 500;

function chunks<T>(list: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

/**
 * Lets other work (requests) run: a clean-up over many rows must not hold the event loop.
 * `setImmediate` runs after the poll phase, so requests that arrived meanwhile are read
 * and their statements queue for the connection before the clean-up's next one.
 */
const yieldTurn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs `statement` for each of `parts` in order, with a turn of the event loop
 * after each. On SQLite a statement runs synchronously and knex resolves it in
 * microtasks, so awaited statements back to back never let a request in: 500
 * awaited INSERTs ran 71 ms on this machine with no timer, no I/O, no other
 * query between them, and a clean-up's thousands of statements held every
 * launch that long. PostgreSQL answers through the network and yields anyway.
 */
async function eachInTurn<T>(parts: Iterable<T>, statement: (part: T) => Promise<unknown>): Promise<void> {
  for (const part of parts) {
    await statement(part);
    await yieldTurn();
  }
}

/**
 * All rows of a query, read page by page by id (`idColumn`, selected as
 * `id`), each page converted by `convert`, with a turn for other work
 * between pages: SQLite answers synchronously, and ten thousand rows read
 * (or converted) at once would hold every request.
 */
async function paged(query: () => Knex.QueryBuilder, idColumn?: string): Promise<Row[]>;
async function paged<T>(query: () => Knex.QueryBuilder, idColumn: string, convert: (row: Row) => T): Promise<T[]>;
async function paged<T>(query: () => Knex.QueryBuilder, idColumn = 'id', convert?: (row: Row) => T): Promise<Array<T | Row>> {
  const size = 1000;
  const out: Array<T | Row> = [];
  for (let after = 0; ;) {
    const page = (await query().andWhere(idColumn, '>', after).orderBy(idColumn).limit(size)) as Row[];
    out.push(...(convert ? page.map(convert) : page));
    if (page.length < size) return out;
    after = Number(page[page.length - 1]?.id);
    await yieldTurn();
  }
}

/** The columns of built_manifests that recording builds compares (not the blobs). */
const RECORD_COLUMNS = [
  'id',
  'repository',
  'digest',
  'owner',
  'system',
  'image_id',
  'image_name',
  'build_number',
  'pushed_at',
  'image_deleted_at',
  'unused_since',
  'last_launched_at',
  'status',
  'delete_run',
  'deleted_at',
  'message',
];

/** The repository a build's target (`registry/repository:number`) names, as `registry/repository`. */
function repositoryOf(target: string): string | undefined {
  try {
    const reference = parseReference(target);
    return `${reference.registry}/${reference.repository}`;
  } catch {
    return undefined;
  }
}

export class StorageStore {
  constructor(private readonly db: Knex | Knex.Transaction) {}

  /**
   * Records the manifests that succeeded builds pushed and that are not
   * recorded yet (all builds, or `owner`'s, or one image's): a build row goes
   * with its image, the manifest stays in the registry until the clean-up
   * deletes it. A digest a newer build pushed again is that build's; one
   * pushed again after it was deleted is back.
   */
  async recordBuilds(filter: { owner?: string; imageId?: number } = {}): Promise<number> {
    const builds = await paged(() => {
      const query = this.db('builds as b')
        .join('images as i', 'i.id', 'b.image_id')
        .select('b.id', 'b.image_id', 'b.owner', 'b.number', 'b.target', 'b.digest', 'b.finished_at', 'i.system', 'i.name')
        .where('b.status', 'succeeded')
        .whereNotNull('b.digest');
      if (filter.owner !== undefined) query.andWhere('b.owner', filter.owner);
      if (filter.imageId !== undefined) query.andWhere('b.image_id', filter.imageId);
      return query;
    }, 'b.id');
    if (builds.length === 0) return 0;
    const known = new Map<string, BuiltManifestRow>();
    const existing = await paged(
      () => {
        const query = this.db('built_manifests').select(RECORD_COLUMNS);
        if (filter.owner !== undefined) query.where({ owner: filter.owner });
        if (filter.imageId !== undefined) query.where({ image_id: filter.imageId });
        return query;
      },
      'id',
      manifestFromRow,
    );
    for (const row of existing) known.set(manifestKey(row.repository, row.digest), row);
    // The newest push of each digest.
    const newest = new Map<string, Row & { repository: string; pushedAt: Date }>();
    for (const [n, build] of builds.entries()) {
      if (n % 1000 === 999) await yieldTurn();
      const repository = repositoryOf(String(build.target));
      if (!repository) continue;
      const key = manifestKey(repository, String(build.digest));
      const pushedAt = toDate(build.finished_at ?? new Date());
      const before = newest.get(key);
      if (!before || pushedAt.getTime() > before.pushedAt.getTime()) newest.set(key, { ...build, repository, pushedAt });
    }
    const inserts: Row[] = [];
    let changed = 0;
    let seen = 0;
    for (const [key, build] of newest) {
      // A turn every 1000 rows, and after each statement: see eachInTurn.
      if (++seen % 1000 === 0) await yieldTurn();
      const fields = {
        owner: String(build.owner),
        system: String(build.system),
        image_id: Number(build.image_id),
        image_name: String(build.name),
        build_number: Number(build.number),
        pushed_at: build.pushedAt,
      };
      // Without a filter every row was read; with one, a row of the repository may lie outside it.
      const row =
        known.get(key) ??
        (filter.owner !== undefined || filter.imageId !== undefined
          ? await this.manifestByKey(build.repository, String(build.digest))
          : undefined);
      if (!row) {
        inserts.push({ repository: build.repository, digest: String(build.digest), ...fields, status: 'kept' });
        continue;
      }
      const pushedAt = build.pushedAt.getTime();
      if (row.status === 'deleted' && row.deletedAt && pushedAt > row.deletedAt.getTime()) {
        // Pushed again after the clean-up deleted it (the same content built again): in the registry again.
        await this.db('built_manifests')
          .where({ id: row.id, status: 'deleted' })
          .update({
            ...fields,
            status: 'kept',
            deleted_at: null,
            delete_run: null,
            image_deleted_at: null,
            unused_since: null,
            message: null,
          });
        changed++;
        await yieldTurn();
      } else if (pushedAt > row.pushedAt.getTime()) {
        // A newer build pushed the same content: the manifest is that build's, current again.
        await this.db('built_manifests')
          .where({ id: row.id })
          .update({ ...fields, image_deleted_at: null, unused_since: null });
        changed++;
        await yieldTurn();
      }
    }
    await eachInTurn(chunks(inserts, 100), async (part) => {
      await this.db('built_manifests').insert(part).onConflict(['repository', 'digest']).ignore();
      changed += part.length;
    });
    return changed;
  }

  private async manifestByKey(repository: string, digest: string): Promise<BuiltManifestRow | undefined> {
    const row = (await this.db('built_manifests').where({ repository, digest }).first()) as Row | undefined;
    return row ? manifestFromRow(row) : undefined;
  }

  /**
   * An image is being deleted (in its deletion's transaction, before its
   * builds go with it): its built manifests are recorded and their grace
   * starts now.
   */
  async imageDeleted(imageId: number, now: Date): Promise<void> {
    await this.recordBuilds({ imageId });
    await this.db('built_manifests').where({ image_id: imageId }).whereNull('image_deleted_at').update({ image_deleted_at: now });
  }

  /** Every manifest not deleted yet. */
  async liveManifests(): Promise<BuiltManifestRow[]> {
    return paged(() => this.db('built_manifests').whereNot({ status: 'deleted' }), 'id', manifestFromRow);
  }

  /** The manifests the clean-up deleted, newest first. */
  async deletedManifests(limit: number): Promise<BuiltManifestRow[]> {
    return ((await this.db('built_manifests').where({ status: 'deleted' }).orderBy('deleted_at', 'desc').limit(limit)) as Row[]).map(
      manifestFromRow,
    );
  }

  /**
   * The manifests of `owner`'s (or everyone's) builds on `system` still in
   * the registry that quotas count: those of images that exist (on the
   * system they are on now), and those of deleted images that an image
   * still points at (`kept`, keys `registry/repository@digest`): deleting
   * an image frees its share, but not what another image keeps.
   */
  async manifestsCounted(system: string, kept: ReadonlyMap<string, unknown>, owner?: string): Promise<BuiltManifestRow[]> {
    const ofImages = this.db('built_manifests as m')
      .join('images as i', function () {
        this.on('i.id', '=', 'm.image_id').andOn('i.owner', '=', 'm.owner');
      })
      .select('m.*')
      .whereNot('m.status', 'deleted')
      .whereNull('m.image_deleted_at')
      .andWhere('i.system', system);
    const ofDeleted = this.db('built_manifests as m')
      .select('m.*')
      .whereNot('m.status', 'deleted')
      .whereNotNull('m.image_deleted_at')
      .andWhere('m.system', system);
    if (owner !== undefined) {
      ofImages.andWhere('m.owner', owner);
      ofDeleted.andWhere('m.owner', owner);
    }
    const stillKept = ((await ofDeleted) as Row[]).map(manifestFromRow).filter((m) => kept.has(manifestKey(m.repository, m.digest)));
    return [...((await ofImages) as Row[]).map(manifestFromRow), ...stillKept];
  }

  /** Manifests whose blobs were never read from the registry. */
  async unmeasured(filter: { owner?: string } = {}): Promise<BuiltManifestRow[]> {
    const query = this.db('built_manifests').whereNull('blobs').whereNot({ status: 'deleted' });
    if (filter.owner !== undefined) query.andWhere({ owner: filter.owner });
    return ((await query.orderBy('id')) as Row[]).map(manifestFromRow);
  }

  async setBlobs(id: number, blobs: Blob[]): Promise<void> {
    await this.db('built_manifests')
      .where({ id })
      .update({ blobs: JSON.stringify(blobs), bytes: blobs.reduce((sum, b) => sum + b.size, 0) });
  }

  /** Manifests no longer their image's current one for a reason no newer build explains (an edit): since `at`. */
  async setUnusedSince(ids: number[], at: Date): Promise<void> {
    await eachInTurn(chunks(ids), (part) =>
      this.db('built_manifests').whereIn('id', part).whereNull('unused_since').update({ unused_since: at }),
    );
  }

  /** Manifests that are their image's current one again (a rollback): no longer unused. */
  async clearUnusedSince(ids: number[]): Promise<void> {
    await eachInTurn(chunks(ids), (part) => this.db('built_manifests').whereIn('id', part).update({ unused_since: null }));
  }

  /**
   * Takes manifests for a deletion by run `run`: those still kept, and those
   * a run that stopped was deleting. Returns the ids this run holds now.
   */
  async takeForDeletion(ids: number[], run: number): Promise<number[]> {
    const held: number[] = [];
    await eachInTurn(chunks(ids), async (part) => {
      await this.db('built_manifests')
        .whereIn('id', part)
        .andWhere((q) => q.where({ status: 'kept' }).orWhere((q2) => q2.where({ status: 'deleting' }).andWhereNot({ delete_run: run })))
        .update({ status: 'deleting', delete_run: run });
      held.push(
        ...(
          (await this.db('built_manifests').whereIn('id', part).andWhere({ status: 'deleting', delete_run: run }).pluck('id')) as number[]
        ).map(Number),
      );
    });
    return held;
  }

  /** Manifests another run was deleting when it stopped: this run finishes them first. */
  async leftDeleting(run: number): Promise<BuiltManifestRow[]> {
    return ((await this.db('built_manifests').where({ status: 'deleting' }).andWhereNot({ delete_run: run })) as Row[]).map(
      manifestFromRow,
    );
  }

  /**
   * Records deletions that happened (or were found done), each with its
   * audit entry, in one transaction: only a row this run still holds
   * changes, and only then is its entry written, so no deletion is recorded twice.
   */
  async deleted(run: number, done: Array<{ id: number; at: Date; entry: AuditEntry }>): Promise<number> {
    if (done.length === 0) return 0;
    return this.db.transaction(async (trx) => {
      const ids = done.map((d) => d.id);
      // In one transaction: what this run still holds is marked deleted, and only that is audited.
      const held = new Set(
        ((await trx('built_manifests').whereIn('id', ids).andWhere({ status: 'deleting', delete_run: run }).pluck('id')) as number[]).map(
          Number,
        ),
      );
      const recorded = done.filter((d) => held.has(d.id));
      const at = recorded.reduce((latest, d) => (d.at > latest ? d.at : latest), new Date(0));
      for (const part of chunks(recorded.map((d) => d.id))) {
        await trx('built_manifests').whereIn('id', part).update({ status: 'deleted', deleted_at: at, message: null });
      }
      for (const part of chunks(recorded, 200))
        await writeAudit(
          trx,
          part.map(({ entry, at }) => ({ entry, at })),
        );
      return recorded.length;
    });
  }

  /** Gives manifests back as kept (not deleted after all), with why. */
  async keptAfterAll(run: number, ids: number[], message: string | null): Promise<void> {
    await eachInTurn(chunks(ids), (part) =>
      this.db('built_manifests').whereIn('id', part).andWhere({ status: 'deleting', delete_run: run }).update({ status: 'kept', message }),
    );
  }

  /** Notes why deleting a manifest failed; it stays held for the next run. */
  async deleteFailed(ids: number[], message: string): Promise<void> {
    await eachInTurn(chunks(ids), (part) => this.db('built_manifests').whereIn('id', part).update({ message }));
  }

  /** The newest launch of each of these manifests (keys `registry/repository@digest`). */
  async recordManifestLaunches(launches: Map<string, Date>): Promise<void> {
    await eachInTurn(launches, ([key, at]) => {
      const atSign = key.lastIndexOf('@');
      return this.db('built_manifests')
        .where({ repository: key.slice(0, atSign), digest: key.slice(atSign + 1) })
        .andWhere((q) => q.whereNull('last_launched_at').orWhere('last_launched_at', '<', at))
        .update({ last_launched_at: at });
    });
  }

  /** The newest launch of each user's server on a system (keys: user and system). */
  async recordVolumeLaunches(launches: Array<{ user: string; system: string; at: Date }>): Promise<void> {
    await eachInTurn(launches, ({ user, system, at }) =>
      this.db('volume_launches')
        .insert({ user_name: user, system, last_at: at })
        .onConflict(['user_name', 'system'])
        .merge({
          last_at: this.db.raw(
            'case when volume_launches.last_at < excluded.last_at then excluded.last_at else volume_launches.last_at end',
          ),
        }),
    );
  }

  /** When each user last started a server on each system (key `user\u0000system`). */
  async volumeLaunches(): Promise<Map<string, Date>> {
    const rows = (await this.db('volume_launches').select('user_name', 'system', 'last_at')) as Row[];
    return new Map(rows.map((r) => [`${String(r.user_name)}\u0000${String(r.system)}`, toDate(r.last_at)]));
  }

  /** Launches in `engine_images` since `since`, by pinned image (`registry/repository@digest`). */
  async engineLaunchesSince(since: Date): Promise<Map<string, Date>> {
    const rows = (await this.db('engine_images').select('image', 'last_used_at').where('last_used_at', '>=', since)) as Row[];
    const out = new Map<string, Date>();
    for (const r of rows) {
      const at = toDate(r.last_used_at);
      const key = String(r.image);
      if ((out.get(key)?.getTime() ?? 0) < at.getTime()) out.set(key, at);
    }
    return out;
  }

  /** The audit entries of launches after `cursor` (by id), oldest first. */
  async launchEntriesAfter(cursor: number, limit: number): Promise<Array<{ id: number; at: Date; details: Record<string, unknown> }>> {
    const rows = (await this.db('audit')
      .select('id', 'at', 'details')
      .where({ action: 'image.launch' })
      .andWhere('id', '>', cursor)
      .orderBy('id')
      .limit(limit)) as Row[];
    return rows.map((r) => ({ id: Number(r.id), at: toDate(r.at), details: fromJson<Record<string, unknown>>(r.details) ?? {} }));
  }

  // -- data volumes ---------------------------------------------------------

  async volumes(filter: { engine?: string; statuses?: VolumeStatus[] } = {}): Promise<DataVolumeRow[]> {
    const query = this.db('data_volumes').select('*');
    if (filter.engine !== undefined) query.where({ engine: filter.engine });
    if (filter.statuses) query.whereIn('status', filter.statuses);
    return ((await query.orderBy('id')) as Row[]).map(volumeFromRow);
  }

  async volume(id: number): Promise<DataVolumeRow | undefined> {
    const row = (await this.db('data_volumes').where({ id }).first()) as Row | undefined;
    return row ? volumeFromRow(row) : undefined;
  }

  /** What an engine's listing showed of a volume: created on first sight, refreshed after. */
  async sawVolume(
    engine: string,
    seen: { name: string; user: string; system: string; bytes: number | null; inUse: boolean },
    now: Date,
  ): Promise<DataVolumeRow> {
    await this.db('data_volumes')
      .insert({
        engine,
        name: seen.name,
        user_name: seen.user,
        system: seen.system,
        bytes: seen.bytes,
        in_use: seen.inUse,
        first_seen_at: now,
        seen_at: now,
        status: 'present',
      })
      .onConflict(['engine', 'name'])
      .merge({ user_name: seen.user, system: seen.system, bytes: seen.bytes, in_use: seen.inUse, seen_at: now });
    // A volume of the same name made again after it was removed is present again.
    await this.db('data_volumes')
      .where({ engine, name: seen.name })
      .whereIn('status', ['removed', 'gone'])
      .update({ status: 'present', removed_at: null, remove_run: null, orphaned_at: null, orphan_reason: null, first_seen_at: now });
    return volumeFromRow((await this.db('data_volumes').where({ engine, name: seen.name }).first()) as Row);
  }

  /** Volumes of `engine` that its listing no longer showed: someone else removed them. */
  async goneFrom(engine: string, present: ReadonlySet<string>, now: Date): Promise<void> {
    const rows = (await this.db('data_volumes').where({ engine }).whereIn('status', ['present', 'removing']).select('id', 'name')) as Row[];
    const gone = rows.filter((r) => !present.has(String(r.name))).map((r) => Number(r.id));
    await eachInTurn(chunks(gone), (part) => this.db('data_volumes').whereIn('id', part).update({ status: 'gone', removed_at: now }));
  }

  /** Since when, and why, nobody owns a volume; null again when someone does. */
  async setOrphaned(id: number, orphan: { since: Date; reason: OrphanReason } | null): Promise<void> {
    await this.db('data_volumes')
      .where({ id })
      .update(orphan ? { orphaned_at: orphan.since, orphan_reason: orphan.reason } : { orphaned_at: null, orphan_reason: null });
  }

  /** An admin keeps a volume (or no longer does). */
  async setKept(id: number, by: string | null, now: Date, entry: AuditEntry): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      const changed = await trx('data_volumes')
        .where({ id })
        .update(by ? { kept_by: by, kept_at: now } : { kept_by: null, kept_at: null });
      if (changed === 1) await writeAudit(trx, [{ entry, at: now }]);
      return changed === 1;
    });
  }

  /** Takes a volume for removal by run `run` (or one a stopped run was removing); false when another holds it. */
  async takeVolume(id: number, run: number): Promise<boolean> {
    const changed = await this.db('data_volumes')
      .where({ id })
      .andWhere((q) => q.where({ status: 'present' }).orWhere((q2) => q2.where({ status: 'removing' }).andWhereNot({ remove_run: run })))
      .update({ status: 'removing', remove_run: run });
    return changed === 1;
  }

  /** Records a removal with its audit entry; only a row this run holds changes. */
  async volumeRemoved(id: number, run: number, at: Date, entry: AuditEntry): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      const changed = await trx('data_volumes')
        .where({ id, status: 'removing', remove_run: run })
        .update({ status: 'removed', removed_at: at });
      if (changed === 1) await writeAudit(trx, [{ entry, at }]);
      return changed === 1;
    });
  }

  /** A volume not removed after all (a container uses it): present again. */
  async volumeKept(id: number, run: number, inUse: boolean): Promise<void> {
    await this.db('data_volumes').where({ id, status: 'removing', remove_run: run }).update({ status: 'present', in_use: inUse });
  }

  // -- users' requests ------------------------------------------------------

  async removalRequests(): Promise<Map<string, Date>> {
    const rows = (await this.db('data_removal_requests').select('user_name', 'requested_at')) as Row[];
    return new Map(rows.map((r) => [String(r.user_name), toDate(r.requested_at)]));
  }

  async removalRequestOf(user: string): Promise<Date | undefined> {
    const row = (await this.db('data_removal_requests').where({ user_name: user }).first()) as Row | undefined;
    return row ? toDate(row.requested_at) : undefined;
  }

  async requestRemoval(user: string, now: Date, entry: AuditEntry): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('data_removal_requests').insert({ user_name: user, requested_at: now }).onConflict('user_name').ignore();
      await writeAudit(trx, [{ entry, at: now }]);
    });
  }

  async withdrawRemoval(user: string, now: Date, entry: AuditEntry): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      const removed = await trx('data_removal_requests').where({ user_name: user }).delete();
      if (removed > 0) await writeAudit(trx, [{ entry, at: now }]);
      return removed > 0;
    });
  }

  /** The volumes a user has on every engine (for their own page). */
  async volumesOf(user: string): Promise<DataVolumeRow[]> {
    return (
      (await this.db('data_volumes').where({ user_name: user }).whereIn('status', ['present', 'removing']).orderBy('id')) as Row[]
    ).map(volumeFromRow);
  }

  // -- what quotas count --------------------------------------------------------

  /** Images saved on `system` (by `owner`, or by everyone). */
  async imageCount(system: string, owner?: string): Promise<number> {
    const query = this.db('images').where({ system });
    if (owner !== undefined) query.andWhere({ owner });
    const [row] = (await query.count({ n: '*' })) as Array<{ n: number | string }>;
    return Number(row?.n ?? 0);
  }

  /** Builds waiting or running per image on `system` (of `owner`, or everyone's), with the image's name. */
  async activeBuildsByImage(system: string, owner?: string): Promise<Map<number, { name: string; builds: number }>> {
    const query = this.db('builds as b')
      .join('images as i', 'i.id', 'b.image_id')
      .where('i.system', system)
      .whereIn('b.status', ['queued', 'running'])
      .groupBy('i.id', 'i.name')
      .select('i.id', 'i.name')
      .count({ n: '*' });
    if (owner !== undefined) query.andWhere('b.owner', owner);
    const rows = (await query) as Array<{ id: number; name: string; n: number | string }>;
    return new Map(rows.map((r) => [Number(r.id), { name: String(r.name), builds: Number(r.n) }]));
  }
}
