/** Rows of `cleanup_runs`: scheduled and requested clean-ups, and what each did. Through knex. */
import type { Knex } from 'knex';
import { fromJson, toDate, toDateOrNull } from '../store/rows.js';
import { laneOf, type CleanupKind } from './job.js';

type Row = Record<string, unknown>;

/** What a run did, in numbers and names: the admin page, the API and the metrics show it. */
export interface RunSummary {
  dryRun?: false;
  /** Manifests deleted from the registry (or found deleted already). */
  deletedManifests: number;
  /** Their bytes as their manifests state them (shared layers counted per manifest; the registry frees what no kept manifest shares at its garbage collection). */
  deletedBytes: number;
  /** Data volumes removed, and their bytes. */
  removedVolumes: number;
  removedVolumeBytes: number;
  /** Waiting for their grace, or kept by a rule. */
  waiting: number;
  /** Not removed because a container uses them. */
  inUse: number;
  failures: number;
  /** The first names removed (at most 50), for the page. */
  removed: string[];
  /** Why something could not be done (the hub unreachable, a registry refusing deletes). */
  problems: string[];
}

export interface CleanupRunRow {
  id: number;
  kind: CleanupKind;
  engine: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  requestedBy: string;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  auditCursor: number | null;
  summary: RunSummary | null;
  /** Pre-pulled images of a volumes run's engine, by owner and system. */
  usage: PulledUsage[] | null;
  message: string | null;
}

/** Images the service keeps in an engine for fast starts, per owner and system. */
export interface PulledUsage {
  owner: string;
  system: string;
  bytes: number;
  images: number;
}

function runFromRow(r: Row): CleanupRunRow {
  return {
    id: Number(r.id),
    kind: String(r.kind) as CleanupKind,
    engine: String(r.engine ?? ''),
    status: String(r.status) as CleanupRunRow['status'],
    requestedBy: String(r.requested_by),
    createdAt: toDate(r.created_at),
    startedAt: toDateOrNull(r.started_at),
    finishedAt: toDateOrNull(r.finished_at),
    auditCursor: r.audit_cursor === null || r.audit_cursor === undefined ? null : Number(r.audit_cursor),
    summary: r.summary === null || r.summary === undefined ? null : fromJson<RunSummary>(r.summary),
    usage: r.usage === null || r.usage === undefined ? null : fromJson<PulledUsage[]>(r.usage),
    message: r.message === null || r.message === undefined ? null : String(r.message),
  };
}

export class CleanupRunStore {
  constructor(private readonly db: Knex) {}

  /**
   * Asks for the scheduled run of `slot`: every replica asks, the unique
   * slot makes one row. Returns its id when this call made it.
   */
  async schedule(kind: CleanupKind, engine: string, slot: string, now: Date): Promise<number | undefined> {
    const rows = (await this.db('cleanup_runs')
      .insert({ kind, engine, lane: laneOf(kind, engine), slot, status: 'queued', requested_by: 'schedule', attempts: 0, created_at: now })
      .onConflict('slot')
      .ignore()
      .returning('id')) as Array<{ id: number } | number>;
    const row = rows[0];
    return row === undefined ? undefined : typeof row === 'object' ? Number(row.id) : Number(row);
  }

  /** Queues a run an admin asked for. */
  async request(kind: CleanupKind, engine: string, by: string, now: Date): Promise<number> {
    const [row] = (await this.db('cleanup_runs')
      .insert({ kind, engine, lane: laneOf(kind, engine), status: 'queued', requested_by: by, attempts: 0, created_at: now })
      .returning('id')) as Array<{ id: number } | number>;
    return typeof row === 'object' ? Number(row.id) : Number(row);
  }

  async get(id: number): Promise<CleanupRunRow | undefined> {
    const row = (await this.db('cleanup_runs').where({ id }).first()) as Row | undefined;
    return row ? runFromRow(row) : undefined;
  }

  /** The newest runs, newest first. */
  async recent(limit: number): Promise<CleanupRunRow[]> {
    return ((await this.db('cleanup_runs').orderBy('id', 'desc').limit(limit)) as Row[]).map(runFromRow);
  }

  /** The newest ended run of each lane. */
  async lastEnded(): Promise<CleanupRunRow[]> {
    const newest = this.db('cleanup_runs').max('id').whereIn('status', ['succeeded', 'failed']).groupBy('lane');
    return ((await this.db('cleanup_runs').whereIn('id', newest).orderBy('id')) as Row[]).map(runFromRow);
  }

  /** How far launches were read from the audit log: the furthest any run got. */
  async auditCursor(): Promise<number> {
    const row = (await this.db('cleanup_runs').max('audit_cursor as n').first()) as { n: number | string | null } | undefined;
    return Number(row?.n ?? 0);
  }

  /** Engines that have data volumes or kept images: a requested volumes run goes to each. */
  async knownEngines(): Promise<string[]> {
    const volumes = (await this.db('data_volumes').distinct('engine').pluck('engine')) as string[];
    const images = (await this.db('engine_images').distinct('engine').pluck('engine')) as string[];
    return [...new Set([...volumes, ...images].map(String))].sort();
  }
}
