/** Rows of `engine_images`: what the service keeps, or is pulling, in each Docker engine. Through knex. */
import type { Knex } from 'knex';
import { toDate, toDateOrNull } from '../store/rows.js';

export type EngineImageStatus = 'queued' | 'pulling' | 'ready' | 'failed' | 'removed';

export interface EngineImageRow {
  id: number;
  engine: string;
  /** registry/repository@digest */
  image: string;
  status: EngineImageStatus;
  owner: string | null;
  imageId: number | null;
  pulledByService: boolean;
  currentBytes: number;
  totalBytes: number;
  /** 0 to 1. */
  fraction: number;
  message: string | null;
  runner: string | null;
  heartbeatAt: Date | null;
  attempts: number;
  requestedAt: Date;
  finishedAt: Date | null;
  lastUsedAt: Date | null;
}

/** Whose credentials pull an image: the configuration that asked for it. */
export interface Requester {
  owner: string;
  imageId: number;
}

type Row = Record<string, unknown>;

function fromRow(r: Row): EngineImageRow {
  return {
    id: Number(r.id),
    engine: String(r.engine),
    image: String(r.image),
    status: r.status as EngineImageStatus,
    owner: r.owner === null ? null : String(r.owner),
    imageId: r.image_id === null ? null : Number(r.image_id),
    pulledByService: Boolean(r.pulled_by_service),
    currentBytes: Number(r.current_bytes),
    totalBytes: Number(r.total_bytes),
    fraction: Number(r.fraction),
    message: r.message === null ? null : String(r.message),
    runner: r.runner === null ? null : String(r.runner),
    heartbeatAt: toDateOrNull(r.heartbeat_at),
    attempts: Number(r.attempts),
    requestedAt: toDate(r.requested_at),
    finishedAt: toDateOrNull(r.finished_at),
    lastUsedAt: toDateOrNull(r.last_used_at),
  };
}

export class EngineImageStore {
  constructor(private readonly db: Knex) {}

  async get(engine: string, image: string): Promise<EngineImageRow | undefined> {
    const row = (await this.db('engine_images').where({ engine, image }).first()) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  async byId(id: number): Promise<EngineImageRow | undefined> {
    const row = (await this.db('engine_images').where({ id }).first()) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** The rows of these images on `engine`, by image. */
  async forImages(engine: string, images: string[]): Promise<Map<string, EngineImageRow>> {
    if (images.length === 0) return new Map();
    const rows = (await this.db('engine_images').where({ engine }).whereIn('image', images)) as Row[];
    return new Map(rows.map((r) => [String(r.image), fromRow(r)]));
  }

  /**
   * Queues a pull of `image` into `engine` unless one is queued, running or
   * done: a new row, or a failed, removed or vanished one queued again.
   * Returns whether a pull was queued.
   */
  async request(
    engine: string,
    image: string,
    by: Requester,
    now: Date,
    requeue: EngineImageStatus[] = ['failed', 'removed'],
  ): Promise<boolean> {
    const queued = {
      status: 'queued',
      owner: by.owner,
      image_id: by.imageId,
      current_bytes: 0,
      total_bytes: 0,
      fraction: 0,
      message: null,
      runner: null,
      heartbeat_at: null,
      attempts: 0,
      requested_at: now,
      finished_at: null,
    };
    const inserted = (await this.db('engine_images')
      .insert({ engine, image, pulled_by_service: false, ...queued })
      .onConflict(['engine', 'image'])
      .ignore()
      .returning('id')) as unknown[];
    if (inserted.length > 0) return true;
    // A compare-and-set on the status: of replicas asking at once, one queues it.
    const changed = await this.db('engine_images').where({ engine, image }).whereIn('status', requeue).update(queued);
    return changed > 0;
  }

  /** Records an image in the engine that needs no pull (already there, or pulled by a run check or a launch). */
  async present(engine: string, image: string, by: Requester | undefined, pulledByService: boolean, now: Date): Promise<void> {
    await this.db('engine_images')
      .insert({
        engine,
        image,
        status: 'ready',
        owner: by?.owner ?? null,
        image_id: by?.imageId ?? null,
        pulled_by_service: pulledByService,
        fraction: 1,
        requested_at: now,
        finished_at: now,
      })
      .onConflict(['engine', 'image'])
      .merge({ status: 'ready', fraction: 1, message: null, finished_at: now, ...(pulledByService ? { pulled_by_service: true } : {}) });
  }

  /** A launch started a server of the image. */
  async used(engine: string, image: string, now: Date): Promise<void> {
    await this.db('engine_images').where({ engine, image }).update({ last_used_at: now });
  }

  /** Images this service pulled into `engine` that no launch used since `before`. */
  async unusedSince(engine: string, before: Date): Promise<EngineImageRow[]> {
    const rows = (await this.db('engine_images')
      .where({ engine, status: 'ready', pulled_by_service: true })
      .andWhere((q) =>
        q.where('last_used_at', '<', before).orWhere((q2) => q2.whereNull('last_used_at').andWhere('finished_at', '<', before)),
      )) as Row[];
    return rows.map(fromRow);
  }

  /**
   * The images this service pulled into `engine` and keeps there, the least
   * recently started first (one never started counts from when it was pulled,
   * before any that was started).
   */
  async kept(engine: string): Promise<EngineImageRow[]> {
    const rows = ((await this.db('engine_images').where({ engine, status: 'ready', pulled_by_service: true })) as Row[]).map(fromRow);
    const started = (r: EngineImageRow) => r.lastUsedAt?.getTime() ?? -Infinity;
    const pulled = (r: EngineImageRow) => (r.finishedAt ?? r.requestedAt).getTime();
    return rows.sort((a, b) => started(a) - started(b) || pulled(a) - pulled(b) || a.id - b.id);
  }

  async removed(id: number, now: Date): Promise<void> {
    await this.db('engine_images').where({ id, status: 'ready' }).update({ status: 'removed', finished_at: now });
  }
}
