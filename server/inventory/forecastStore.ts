/** Forecast rows, and the images on a system with their newest check (what a forecast judges). */
import type { Knex } from 'knex';
import { checkFromRow, CHECK_RESULT_COLUMNS, type CheckRow } from '../checks/store.js';
import { fromJson, toDate, toDateOrNull } from '../store/rows.js';
import type { ForecastTarget, ForecastVerdict } from './forecast.js';

type Row = Record<string, unknown>;

/** One image's line in a forecast. */
export interface ForecastResult {
  imageId: number;
  owner: string;
  name: string;
  reference: string;
  /** The digest judged (the newest check's); the owner's tile shows the result only while the image is still at it. */
  digest: string | null;
  verdict: ForecastVerdict;
  reasons: string[];
}

export interface ForecastRow {
  id: number;
  system: string;
  target: ForecastTarget;
  results: ForecastResult[];
  counts: Record<ForecastVerdict, number>;
  createdBy: string;
  createdAt: Date;
  published: { by: string; at: Date } | null;
}

function forecastFromRow(r: Row): ForecastRow {
  const publishedAt = toDateOrNull(r.published_at);
  return {
    id: Number(r.id),
    system: String(r.system),
    target: fromJson<ForecastTarget>(r.target),
    results: fromJson<ForecastResult[]>(r.results),
    counts: { fail: Number(r.fail_count), warn: Number(r.warn_count), pass: Number(r.pass_count), unknown: Number(r.unknown_count) },
    createdBy: String(r.created_by),
    createdAt: toDate(r.created_at),
    published: publishedAt ? { by: String(r.published_by), at: publishedAt } : null,
  };
}

/** An image on a system and its newest check. */
export interface ImageInUse {
  id: number;
  owner: string;
  name: string;
  reference: string;
  check: CheckRow | undefined;
}

export class ForecastStore {
  constructor(private readonly db: Knex) {}

  /** Every image saved on `system`, whoever owns it, with its newest check (two queries). */
  async imagesOn(system: string): Promise<ImageInUse[]> {
    const images = (await this.db('images').where({ system }).orderBy('id').select('id', 'owner', 'name', 'reference')) as Row[];
    const newest = this.db('checks')
      .max('id as id')
      .whereIn('image_id', this.db('images').where({ system }).select('id'))
      .groupBy('image_id');
    const checks = (await this.db('checks')
      .whereIn('id', newest)
      .select(...CHECK_RESULT_COLUMNS)) as Row[];
    const byImage = new Map(checks.map((r) => [Number(r.image_id), checkFromRow(r)]));
    return images.map((r) => ({
      id: Number(r.id),
      owner: String(r.owner),
      name: String(r.name),
      reference: String(r.reference),
      check: byImage.get(Number(r.id)),
    }));
  }

  async insert(forecast: Omit<ForecastRow, 'id' | 'published'>): Promise<number> {
    const [row] = (await this.db('forecasts')
      .insert({
        system: forecast.system,
        target: JSON.stringify(forecast.target),
        results: JSON.stringify(forecast.results),
        fail_count: forecast.counts.fail,
        warn_count: forecast.counts.warn,
        pass_count: forecast.counts.pass,
        unknown_count: forecast.counts.unknown,
        created_by: forecast.createdBy,
        created_at: forecast.createdAt,
      })
      .returning('id')) as Array<{ id: number } | number>;
    return typeof row === 'object' ? Number(row.id) : Number(row);
  }

  async get(id: number): Promise<ForecastRow | undefined> {
    const row = (await this.db('forecasts').where({ id }).first()) as Row | undefined;
    return row ? forecastFromRow(row) : undefined;
  }

  /** The newest forecasts, of one system or all; without their results (a list). */
  async recent(system: string | undefined, limit = 20): Promise<ForecastRow[]> {
    const query = this.db('forecasts').orderBy('id', 'desc').limit(limit);
    if (system) query.where({ system });
    return ((await query) as Row[]).map(forecastFromRow);
  }

  async publish(id: number, by: string, now: Date): Promise<void> {
    await this.db('forecasts').where({ id }).update({ published_by: by, published_at: now });
  }

  /** The newest published forecast of each of `systems`. */
  async publishedFor(systems: readonly string[]): Promise<Map<string, ForecastRow>> {
    if (systems.length === 0) return new Map();
    const newest = this.db('forecasts').max('id as id').whereIn('system', systems).whereNotNull('published_at').groupBy('system');
    const rows = (await this.db('forecasts').whereIn('id', newest)) as Row[];
    return new Map(rows.map((r) => [String(r.system), forecastFromRow(r)]));
  }
}
