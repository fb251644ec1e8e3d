/**
 * Rows of `link_launches`: each visitor's newest launch through a link, as
 * the progress page shows it, written by the replica that runs it (every
 * step, and a beat while it waits) and read by any. A launch takes the row
 * only from one that ended or went silent, in one statement, so that two
 * replicas never both hold it; and every later write names the launch, so
 * that a launch taken for ended never writes over the one that took its
 * place. Through knex.
 */
import type { Knex } from 'knex';
import { toDate } from '../store/rows.js';
import { LAUNCH_STEPS, type LaunchStep, type LaunchView } from './launch.js';

/** A stored launch: what the page shows, which launch it is, and when its replica last said it was still at it. */
export interface StoredLaunch extends LaunchView {
  id: string;
  beatAt: Date;
}

type Row = Record<string, unknown>;

function fromRow(r: Row): StoredLaunch {
  const step = String(r.step);
  return {
    id: String(r.launch_id),
    step: (LAUNCH_STEPS as readonly string[]).includes(step) ? (step as LaunchStep) : 'failed',
    message: r.message === null || r.message === undefined ? null : String(r.message),
    repo: String(r.repo),
    commit: String(r.commit),
    system: String(r.system),
    imageId: Number(r.image_id),
    imageName: String(r.image_name),
    buildNumber: r.build_number === null || r.build_number === undefined ? null : Number(r.build_number),
    landing: String(r.landing),
    startedAt: toDate(r.started_at),
    beatAt: toDate(r.beat_at),
  };
}

function toRow(launch: LaunchView, now: Date): Row {
  return {
    step: launch.step,
    message: launch.message,
    repo: launch.repo,
    commit: launch.commit,
    system: launch.system,
    image_id: launch.imageId,
    image_name: launch.imageName,
    build_number: launch.buildNumber,
    landing: launch.landing,
    started_at: launch.startedAt,
    beat_at: now,
  };
}

export class LinkLaunchStore {
  constructor(private readonly db: Knex) {}

  /** `owner`'s newest launch; undefined when they never opened a link. */
  async get(owner: string): Promise<StoredLaunch | undefined> {
    const row = (await this.db('link_launches').where({ owner }).first()) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /**
   * Makes launch `id` the visitor's: it takes the row when there is none, or
   * when the launch in it ended or beat last before `silentSince`. Undefined
   * when it did; otherwise the live launch that holds the row.
   */
  async take(owner: string, id: string, launch: LaunchView, now: Date, silentSince: Date): Promise<StoredLaunch | undefined> {
    const row = { owner, launch_id: id, ...toRow(launch, now) };
    const replaced = await this.db('link_launches')
      .where({ owner })
      .andWhere((q) => q.whereIn('step', ['ready', 'failed']).orWhere('beat_at', '<', silentSince))
      .update(row);
    if (replaced === 0) await this.db('link_launches').insert(row).onConflict('owner').ignore();
    const held = await this.get(owner);
    return held && held.id !== id ? held : undefined;
  }

  /** Writes launch `id` as it is now, with a beat; false when the row is no longer its own. */
  async update(owner: string, id: string, launch: LaunchView, now: Date): Promise<boolean> {
    return (await this.db('link_launches').where({ owner, launch_id: id }).update(toRow(launch, now))) > 0;
  }

  /** Launch `id` is still at it; false when the row is no longer its own. */
  async beat(owner: string, id: string, now: Date): Promise<boolean> {
    return (await this.db('link_launches').where({ owner, launch_id: id }).update({ beat_at: now })) > 0;
  }
}
