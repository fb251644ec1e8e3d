/** Check rows and stored layer indexes, through knex. */
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Knex } from 'knex';
import type { Finding, ImageFacts } from '../inspect/analyze.js';
import { LAYER_INDEX_VERSION, type LayerIndex } from '../inspect/layerIndex.js';
import { fromJson, toDate, toDateOrNull } from '../store/rows.js';
import { assertQueueRoom } from '../jobs/queueRoom.js';
import { CHECK_JOB } from './job.js';
import { mayReuse, type LayerIndexCache } from './layerCache.js';
import type { CheckProgress } from './staticCheck.js';
import type { CheckStatus } from './status.js';

/** The access of a check made without credentials. */
export const PUBLIC_ACCESS = 'public';

export interface CheckRow {
  id: number;
  imageId: number | null;
  owner: string;
  system: string;
  reference: string;
  digest: string | null;
  manifestDigest: string | null;
  platform: string;
  policyHash: string;
  /** registry/repository the check read (null before this was recorded). */
  repository: string | null;
  /** How it read the image: "public" (no credentials) or "credential:" and the credential's fingerprint. */
  access: string | null;
  kind: 'static' | 'full';
  status: CheckStatus;
  findings: Finding[];
  facts: ImageFacts | null;
  log: string;
  progress: CheckProgress | null;
  reusedFrom: number | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  durationMs: number | null;
  /** The replica running the job. */
  runner: string | null;
  heartbeatAt: Date | null;
  /** How often the job was claimed. */
  attempts: number;
  /**
   * A moved tag's new content, read without becoming the image's check: the
   * image's status and launches go by its newest check that is no candidate,
   * until its owner accepts this one (revisions/).
   */
  candidate: boolean;
}

export type NewCheck = Omit<CheckRow, 'id' | 'runner' | 'heartbeatAt' | 'attempts' | 'repository' | 'access' | 'candidate'> &
  Partial<Pick<CheckRow, 'runner' | 'heartbeatAt' | 'attempts' | 'repository' | 'access' | 'candidate'>>;

type Row = Record<string, unknown>;

/** The columns of a check that decide a launch: all but its log and progress, which can be long. */
export const CHECK_RESULT_COLUMNS = [
  'id',
  'image_id',
  'owner',
  'system',
  'reference',
  'digest',
  'manifest_digest',
  'platform',
  'policy_hash',
  'repository',
  'access',
  'kind',
  'status',
  'findings',
  'facts',
  'reused_from',
  'created_at',
  'started_at',
  'finished_at',
  'duration_ms',
  'runner',
  'heartbeat_at',
  'attempts',
  'candidate',
] as const;

/** A `checks` row to its record (also used by queries that join it); a missing log reads as empty, a missing progress as none. */
export function checkFromRow(r: Row): CheckRow {
  return {
    id: Number(r.id),
    imageId: r.image_id === null ? null : Number(r.image_id),
    owner: String(r.owner),
    system: String(r.system),
    reference: String(r.reference),
    digest: (r.digest as string | null) ?? null,
    manifestDigest: (r.manifest_digest as string | null) ?? null,
    platform: String(r.platform),
    policyHash: String(r.policy_hash),
    repository: (r.repository as string | null | undefined) ?? null,
    access: (r.access as string | null | undefined) ?? null,
    kind: r.kind as CheckRow['kind'],
    status: r.status as CheckStatus,
    findings: fromJson<Finding[]>(r.findings),
    facts: r.facts === null ? null : fromJson<ImageFacts>(r.facts),
    log: String(r.log ?? ''),
    progress: r.progress === null || r.progress === undefined ? null : fromJson<CheckProgress>(r.progress),
    reusedFrom: r.reused_from === null ? null : Number(r.reused_from),
    createdAt: toDate(r.created_at),
    startedAt: toDateOrNull(r.started_at),
    finishedAt: toDateOrNull(r.finished_at),
    durationMs: r.duration_ms === null ? null : Number(r.duration_ms),
    runner: (r.runner as string | null) ?? null,
    heartbeatAt: toDateOrNull(r.heartbeat_at),
    attempts: Number(r.attempts ?? 0),
    candidate: r.candidate === true || r.candidate === 1,
  };
}

/** A check's fields as columns of its row (the fields given only): what inserts and the job's guarded writes store. */
export function checkColumns(c: Partial<NewCheck>): Row {
  const row: Row = {};
  const set = (key: string, value: unknown) => {
    if (value !== undefined) row[key] = value;
  };
  set('image_id', c.imageId);
  set('owner', c.owner);
  set('system', c.system);
  set('reference', c.reference);
  set('digest', c.digest);
  set('manifest_digest', c.manifestDigest);
  set('platform', c.platform);
  set('policy_hash', c.policyHash);
  set('repository', c.repository);
  set('access', c.access);
  set('kind', c.kind);
  set('status', c.status);
  set('findings', c.findings === undefined ? undefined : JSON.stringify(c.findings));
  set('facts', c.facts === undefined ? undefined : c.facts === null ? null : JSON.stringify(c.facts));
  set('log', c.log);
  set('progress', c.progress === undefined ? undefined : c.progress === null ? null : JSON.stringify(c.progress));
  set('reused_from', c.reusedFrom);
  set('created_at', c.createdAt);
  set('started_at', c.startedAt);
  set('finished_at', c.finishedAt);
  set('duration_ms', c.durationMs);
  set('runner', c.runner);
  set('heartbeat_at', c.heartbeatAt);
  set('attempts', c.attempts);
  set('candidate', c.candidate);
  return row;
}

export class CheckStore {
  private deployment: Promise<string> | undefined;

  constructor(private readonly db: Knex) {}

  /** This deployment's id (one row, written by its migration; it never changes). */
  deploymentId(): Promise<string> {
    this.deployment ??= this.db('deployment')
      .first('id')
      .then((row: { id: string } | undefined) => {
        if (!row) throw new Error('the deployment table is empty: run the migrations');
        return String(row.id);
      })
      .catch((err: unknown) => {
        // Asked again next time: the database may only have been away.
        this.deployment = undefined;
        throw err;
      });
    return this.deployment;
  }

  async insert(check: NewCheck): Promise<number> {
    const [row] = (await this.db('checks').insert(checkColumns(check)).returning('id')) as Array<{ id: number } | number>;
    return typeof row === 'object' ? Number(row.id) : Number(row);
  }

  /** Refuses a new check of `owner` who has `max` waiting or running (429). */
  assertQueueRoom(owner: string, max: number): Promise<void> {
    return assertQueueRoom(this.db, CHECK_JOB, owner, max, 30);
  }

  async get(id: number): Promise<CheckRow | undefined> {
    const row = (await this.db('checks').where({ id }).first()) as Row | undefined;
    return row ? checkFromRow(row) : undefined;
  }

  async forImage(owner: string, imageId: number, limit = 20): Promise<CheckRow[]> {
    const rows = (await this.db('checks').where({ owner, image_id: imageId }).orderBy('id', 'desc').limit(limit)) as Row[];
    return rows.map(checkFromRow);
  }

  /** The newest check of each image: the image's own, never a candidate. */
  async latestFor(owner: string, imageIds: number[]): Promise<Map<number, CheckRow>> {
    if (imageIds.length === 0) return new Map();
    const newest = this.db('checks').max('id as id').where({ owner, candidate: false }).whereIn('image_id', imageIds).groupBy('image_id');
    const rows = (await this.db('checks').whereIn('id', newest)) as Row[];
    return new Map(rows.map((r) => [Number(r.image_id), checkFromRow(r)]));
  }

  /** The newest candidate check of each image that has one (revisions/ decides whether it is pending). */
  async newestCandidates(owner: string, imageIds: number[]): Promise<Map<number, CheckRow>> {
    if (imageIds.length === 0) return new Map();
    const newest = this.db('checks').max('id as id').where({ owner, candidate: true }).whereIn('image_id', imageIds).groupBy('image_id');
    const rows = (await this.db('checks').whereIn('id', newest)) as Row[];
    return new Map(rows.map((r) => [Number(r.image_id), checkFromRow(r)]));
  }

  /**
   * A finished result for the same digest, platform and policy, as thorough as
   * `kind` (a full check serves a static one), of the same repository read with
   * the same access, or without credentials: a registry can claim any digest,
   * so a digest alone proves nothing. An image this caller read without
   * credentials is public, and any result of it serves.
   */
  async reusable(wanted: {
    digest: string;
    platform: string;
    policyHash: string;
    kind: CheckRow['kind'];
    repository: string;
    access: string;
  }): Promise<CheckRow | undefined> {
    const query = this.db('checks')
      .where({ digest: wanted.digest, platform: wanted.platform, policy_hash: wanted.policyHash, repository: wanted.repository })
      .whereIn('kind', wanted.kind === 'static' ? ['static', 'full'] : ['full'])
      .whereIn('status', ['passed', 'failed']);
    if (wanted.access !== PUBLIC_ACCESS) query.whereIn('access', [PUBLIC_ACCESS, wanted.access]);
    const row = (await query.orderBy('id', 'desc').first()) as Row | undefined;
    return row ? checkFromRow(row) : undefined;
  }
}

/** Layer indexes in the database, gzip-compressed JSON, shared by replicas and kept across restarts. */
export function databaseLayerCache(db: Knex): LayerIndexCache {
  return {
    async get(digest, scope) {
      const row = (await db('layer_indexes').where({ digest, version: LAYER_INDEX_VERSION }).first()) as Row | undefined;
      if (!row || !mayReuse((row.scope as string | null) ?? null, scope)) return undefined;
      return JSON.parse(gunzipSync(row.data as Buffer).toString('utf8')) as LayerIndex;
    },
    async put(digest, scope, index) {
      const data = gzipSync(JSON.stringify(index));
      const row = { digest, version: LAYER_INDEX_VERSION, data, scope, created_at: new Date() };
      // An index anyone may reuse is not narrowed by a later private read of the same layer.
      const kept = (await db('layer_indexes').where({ digest, version: LAYER_INDEX_VERSION }).first('scope')) as
        { scope: string | null } | undefined;
      if (kept && kept.scope === null && scope !== null) return;
      await db('layer_indexes').insert(row).onConflict('digest').merge(['version', 'data', 'scope', 'created_at']);
    },
  };
}
