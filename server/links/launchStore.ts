/**
 * Rows of `link_launches`: each visitor's newest launch through a link, as
 * the progress page shows it, written by the replica that runs it (every
 * step, and a beat while it waits) and read by any. Through knex.
 */
import type { Knex } from 'knex';
import { toDate } from '../store/rows.js';
import { LAUNCH_STEPS, type LaunchStep, type LaunchView } from './launch.js';

/** A stored launch: what the page shows, and when its replica last said it was still at it. */
export interface StoredLaunch extends LaunchView {
  beatAt: Date;
}

type Row = Record<string, unknown>;

function fromRow(r: Row): StoredLaunch {
  const step = String(r.step);
  return {
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

export class LinkLaunchStore {
  constructor(private readonly db: Knex) {}

  /** `owner`'s newest launch; undefined when they never opened a link. */
  async get(owner: string): Promise<StoredLaunch | undefined> {
    const row = (await this.db('link_launches').where({ owner }).first()) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** Writes `owner`'s launch as it is now (a new one replaces the last), with a beat. */
  async save(owner: string, launch: LaunchView, now: Date): Promise<void> {
    const row = {
      owner,
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
    await this.db('link_launches').insert(row).onConflict('owner').merge();
  }

  /** The replica running `owner`'s launch is still at it (it started at `startedAt`: a newer launch is not beaten for). */
  async beat(owner: string, startedAt: Date, now: Date): Promise<void> {
    await this.db('link_launches').where({ owner, started_at: startedAt }).update({ beat_at: now });
  }
}
