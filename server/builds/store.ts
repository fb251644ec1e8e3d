/**
 * Rows of `builds`: each build's inputs, state and log; and the files of
 * builds' contexts, stored once per content (`build_files`, by sha256) and
 * named by each build that uses them (`build_inputs`). Through knex.
 */
import { createHash } from 'node:crypto';
import { targetRepository } from './targetRepository.js';
import type { Knex } from 'knex';
import { assertQueueRoom } from '../jobs/queueRoom.js';
import { BUILD_JOB } from './job.js';
import type { Sealed } from '../secrets/keyring.js';
import { fromJson, sealedFromRow, toDate, toDateOrNull } from '../store/rows.js';
import { inputsColumn, storedInputs, type BuildInputs } from './inputs.js';

export const BUILD_STATUSES = ['queued', 'running', 'succeeded', 'failed'] as const;
export type BuildStatus = (typeof BUILD_STATUSES)[number];
/** While a build runs: preparing its context, building, or pushing. */
export const BUILD_PHASES = ['context', 'building', 'pushing'] as const;
export type BuildPhase = (typeof BUILD_PHASES)[number];

export interface BuildRow {
  id: number;
  imageId: number;
  owner: string;
  number: number;
  status: BuildStatus;
  phase: BuildPhase | null;
  requestedBy: string;
  /** What a rebuild repeats (builds/inputs.ts), besides the files and the token. */
  inputs: BuildInputs;
  /** The uploaded files' names and sizes (their contents: {@link BuildStore.contents}). */
  fileNames: Array<{ name: string; size: number }>;
  gitToken: Sealed | null;
  gitCommit: string | null;
  target: string;
  digest: string | null;
  step: number;
  steps: number;
  message: string | null;
  log: string;
  runner: string | null;
  heartbeatAt: Date | null;
  attempts: number;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** A file of a build's context: its name there, and the stored content it names. */
export interface BuildFile {
  name: string;
  size: number;
  sha256: string;
}

/** A file of a new build: with its content when it may not be stored yet (an upload), without when it is (a rebuild's). */
export type NewBuildFile = BuildFile & { content?: Buffer };

/** The sha256 of a file's content, as `build_files` keys it. */
export function contentHash(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

export type NewBuild = Omit<
  BuildRow,
  | 'id'
  | 'status'
  | 'phase'
  | 'digest'
  | 'step'
  | 'steps'
  | 'message'
  | 'log'
  | 'runner'
  | 'heartbeatAt'
  | 'attempts'
  | 'startedAt'
  | 'finishedAt'
  | 'gitCommit'
  | 'fileNames'
> & {
  files: NewBuildFile[];
  /** The commit a repository build's branch named when it was requested (the build records the one it checks out). */
  gitCommit?: string | null;
};

/** The columns a list of builds needs (not the inputs, files or log). */
const SUMMARY_COLUMNS = [
  'id',
  'image_id',
  'owner',
  'number',
  'status',
  'phase',
  'target',
  'digest',
  'step',
  'steps',
  'message',
  'git_commit',
  'created_at',
  'started_at',
  'finished_at',
] as const;

export type BuildSummary = Pick<
  BuildRow,
  | 'id'
  | 'imageId'
  | 'owner'
  | 'number'
  | 'status'
  | 'phase'
  | 'target'
  | 'digest'
  | 'step'
  | 'steps'
  | 'message'
  | 'gitCommit'
  | 'createdAt'
  | 'startedAt'
  | 'finishedAt'
>;

type Row = Record<string, unknown>;

const text = (v: unknown) => (v === null || v === undefined ? null : String(v));

function summaryFromRow(r: Row): BuildSummary {
  return {
    id: Number(r.id),
    imageId: Number(r.image_id),
    owner: String(r.owner),
    number: Number(r.number),
    status: r.status as BuildStatus,
    phase: text(r.phase) as BuildPhase | null,
    target: String(r.target),
    digest: text(r.digest),
    step: Number(r.step),
    steps: Number(r.steps),
    message: text(r.message),
    gitCommit: text(r.git_commit),
    createdAt: toDate(r.created_at),
    startedAt: toDateOrNull(r.started_at),
    finishedAt: toDateOrNull(r.finished_at),
  };
}

function fromRow(r: Row): BuildRow {
  return {
    ...summaryFromRow(r),
    requestedBy: String(r.requested_by),
    inputs: storedInputs(r.inputs),
    fileNames: fromJson<Array<{ name: string; size: number }>>(r.file_names),
    gitToken: r.git_token_ciphertext ? sealedFromRow(r, 'git_token_') : null,
    gitCommit: text(r.git_commit),
    log: String(r.log),
    runner: text(r.runner),
    heartbeatAt: toDateOrNull(r.heartbeat_at),
    attempts: Number(r.attempts),
  };
}

function toRow(b: NewBuild): Row {
  return {
    image_id: b.imageId,
    owner: b.owner,
    number: b.number,
    requested_by: b.requestedBy,
    inputs: inputsColumn(b.inputs),
    file_names: JSON.stringify(b.files.map((f) => ({ name: f.name, size: f.size }))),
    git_token_ciphertext: b.gitToken ? Buffer.from(b.gitToken.ciphertext) : null,
    git_token_nonce: b.gitToken ? Buffer.from(b.gitToken.nonce) : null,
    git_token_key_id: b.gitToken?.keyId ?? null,
    target: b.target,
    target_repository: targetRepository(b.target),
    git_commit: b.gitCommit ?? null,
    created_at: b.createdAt,
  };
}

export class BuildStore {
  constructor(private readonly db: Knex) {}

  /**
   * Inserts a queued build and names its files; a content not stored yet is
   * stored once (another build's copy is the same row). `db` may be a
   * transaction, and should be: the build and its files go in together.
   */
  static async insert(db: Knex | Knex.Transaction, build: NewBuild): Promise<number> {
    const [row] = (await db('builds')
      .insert({ ...toRow(build), status: 'queued', log: '', step: 0, steps: 0, attempts: 0 })
      .returning('id')) as Array<{ id: number } | number>;
    const id = typeof row === 'object' ? Number(row.id) : Number(row);
    for (const file of build.files) {
      if (file.content) {
        await db('build_files')
          .insert({ sha256: file.sha256, size: file.size, content: file.content, created_at: build.createdAt })
          .onConflict('sha256')
          .ignore();
      }
    }
    if (build.files.length > 0) {
      await db('build_inputs').insert(build.files.map((f, position) => ({ build_id: id, position, name: f.name, sha256: f.sha256 })));
    }
    return id;
  }

  /** The files a build's context names, without their contents (a rebuild names them again). */
  async files(buildId: number): Promise<BuildFile[]> {
    const rows = (await this.db('build_inputs')
      .join('build_files', 'build_files.sha256', 'build_inputs.sha256')
      .where('build_inputs.build_id', buildId)
      .orderBy('build_inputs.position')
      .select('build_inputs.name', 'build_inputs.sha256', 'build_files.size')) as Array<{ name: string; sha256: string; size: unknown }>;
    return rows.map((r) => ({ name: r.name, sha256: r.sha256, size: Number(r.size) }));
  }

  /** The files of a build's context with their contents, in their order (at most the upload limit together). */
  async contents(buildId: number): Promise<Array<{ name: string; content: Buffer }>> {
    const rows = (await this.db('build_inputs')
      .join('build_files', 'build_files.sha256', 'build_inputs.sha256')
      .where('build_inputs.build_id', buildId)
      .orderBy('build_inputs.position')
      .select('build_inputs.name', 'build_files.content')) as Array<{ name: string; content: Buffer }>;
    return rows.map((r) => ({ name: r.name, content: Buffer.from(r.content) }));
  }

  async get(id: number): Promise<BuildRow | undefined> {
    const row = (await this.db('builds').where({ id }).first()) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** Build `number` of one of `owner`'s images. */
  async byNumber(owner: string, imageId: number, number: number): Promise<BuildRow | undefined> {
    const row = (await this.db('builds').where({ owner, image_id: imageId, number }).first()) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** Build `number`'s state and log, without its inputs (read twice a second while a page follows it). */
  async stateOf(owner: string, imageId: number, number: number): Promise<{ build: BuildSummary; log: string } | undefined> {
    const row = (await this.db('builds')
      .select([...SUMMARY_COLUMNS, 'log'])
      .where({ owner, image_id: imageId, number })
      .first()) as Row | undefined;
    return row ? { build: summaryFromRow(row), log: String(row.log) } : undefined;
  }

  /** `owner`'s builds of `commit` that succeeded or may still (queued, running), newest first (one build per commit: builds/service.ts). */
  async ofCommit(owner: string, commit: string): Promise<BuildRow[]> {
    const rows = (await this.db('builds')
      .where({ owner, git_commit: commit })
      .whereIn('status', ['succeeded', 'queued', 'running'])
      .orderBy('id', 'desc')
      .limit(20)) as Row[];
    return rows.map(fromRow);
  }

  /** The newest build of one of `owner`'s images. */
  async newest(owner: string, imageId: number): Promise<BuildRow | undefined> {
    const row = (await this.db('builds').where({ owner, image_id: imageId }).orderBy('number', 'desc').first()) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** The newest build of each image (those that have one). */
  async latestFor(owner: string, imageIds: number[]): Promise<Map<number, BuildSummary>> {
    if (imageIds.length === 0) return new Map();
    const newest = this.db('builds').max('number').where('image_id', this.db.ref('b.image_id'));
    const rows = (await this.db('builds as b')
      .select(SUMMARY_COLUMNS.map((c) => `b.${c}`))
      .where('b.owner', owner)
      .whereIn('b.image_id', imageIds)
      .andWhere('b.number', newest)) as Row[];
    return new Map(rows.map((r) => [Number(r.image_id), summaryFromRow(r)]));
  }

  /** The builds of one image, newest first. */
  async forImage(owner: string, imageId: number, limit = 20): Promise<BuildSummary[]> {
    const rows = (await this.db('builds')
      .select(SUMMARY_COLUMNS)
      .where({ owner, image_id: imageId })
      .orderBy('number', 'desc')
      .limit(limit)) as Row[];
    return rows.map(summaryFromRow);
  }

  /** The number of the image's newest successful build; 0 when none succeeded. */
  async newestSucceeded(imageId: number): Promise<number> {
    const row = (await this.db('builds').where({ image_id: imageId, status: 'succeeded' }).max('number as n').first()) as
      { n: number | null } | undefined;
    return Number(row?.n ?? 0);
  }

  /**
   * The users whose builds target `repository` (`registry/repository`, any
   * tag), queued or done: whose built images are there (systems/pushPath.ts).
   */
  async pushersOf(repository: string): Promise<string[]> {
    const rows = (await this.db('builds').distinct('owner').where({ target_repository: repository }).orderBy('owner')) as Row[];
    return rows.map((r) => String(r.owner));
  }

  /** The number the next build of an image gets. */
  static async nextNumber(db: Knex | Knex.Transaction, imageId: number): Promise<number> {
    const row = (await db('builds').where({ image_id: imageId }).max('number as n').first()) as { n: number | null } | undefined;
    return Number(row?.n ?? 0) + 1;
  }

  /**
   * Queued builds created before `before`, ended in words: no replica could
   * build them (builds/worker.ts). Only rows still queued: one claimed
   * meanwhile runs.
   */
  async endQueuedBefore(before: Date, message: string, now: Date): Promise<number> {
    return this.db('builds')
      .where({ status: 'queued' })
      .andWhere('created_at', '<', before)
      .update({ status: 'failed', phase: null, message, finished_at: now });
  }

  /** Refuses a new build of `owner` who has `max` waiting or running (429). */
  assertQueueRoom(owner: string, max: number): Promise<void> {
    return assertQueueRoom(this.db, BUILD_JOB, owner, max, 60);
  }
}
