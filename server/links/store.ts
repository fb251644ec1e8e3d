/**
 * What a launch link reads of a visitor's builds: which of their images was
 * built from a repository, the commit of each image's newest build, and how
 * long such builds took. Read-only; builds are written by builds/ alone.
 */
import type { Knex } from 'knex';
import { storedInputs, type BuildMode } from '../builds/inputs.js';
import type { BuildStatus } from '../builds/store.js';

/** The newest build of one of the visitor's images that came from the link's repository. */
export interface RepositoryImage {
  imageId: number;
  name: string;
  system: string;
  number: number;
  status: BuildStatus;
  /** The commit the build checked out; null until it fetched the repository. */
  commit: string | null;
  /** The ref the build was asked for (a link asks for the commit). */
  ref: string;
  /** How it was built: a link builds by repo2docker's rules (`repository`). */
  mode: BuildMode;
  durationMs: number | null;
  /** Shared with a group or published: others start it, so a link never builds into it. */
  sharedOrPublished: boolean;
}

/** How many of a user's newest builds are read: a user keeps few (quota CUSTOM_IMAGES_QUOTA_BUILDS, 50 by default). */
const READ_LIMIT = 500;

type Row = Record<string, unknown>;

export class LinkStore {
  constructor(private readonly db: Knex) {}

  /**
   * `owner`'s images whose newest build is from `repo` (the whole
   * repository, no directory), on any system; newest first.
   */
  async imagesFrom(owner: string, repo: string): Promise<RepositoryImage[]> {
    const newest = this.db('builds').max('number').where('image_id', this.db.ref('b.image_id'));
    const rows = (await this.db('builds as b')
      .join('images as i', 'i.id', 'b.image_id')
      .select('b.image_id', 'b.number', 'b.status', 'b.git_commit', 'b.inputs', 'b.started_at', 'b.finished_at', 'i.name', 'i.system')
      .select('i.published_at')
      .select(this.db.raw('exists (select 1 from image_shares s where s.image_id = i.id) as shared'))
      .where('b.owner', owner)
      .andWhere('i.owner', owner)
      .andWhere('b.number', newest)
      .orderBy('b.id', 'desc')
      .limit(READ_LIMIT)) as Row[];
    const found: RepositoryImage[] = [];
    for (const r of rows) {
      const inputs = storedInputs(r.inputs);
      if (inputs.gitUrl !== repo || inputs.gitDirectory !== '') continue;
      const started = r.started_at ? new Date(r.started_at as string | number | Date) : null;
      const finished = r.finished_at ? new Date(r.finished_at as string | number | Date) : null;
      found.push({
        imageId: Number(r.image_id),
        name: String(r.name),
        system: String(r.system),
        number: Number(r.number),
        status: r.status as BuildStatus,
        commit: r.git_commit ? String(r.git_commit) : null,
        ref: inputs.gitRef,
        mode: inputs.mode,
        durationMs: started && finished ? finished.getTime() - started.getTime() : null,
        // SQLite answers exists() with 0/1, PostgreSQL with a boolean.
        sharedOrPublished: r.published_at !== null && r.published_at !== undefined ? true : Boolean(Number(r.shared)),
      });
    }
    return found;
  }

  /** Whether `owner` has an image called `name`. */
  async nameTaken(owner: string, name: string): Promise<boolean> {
    return (await this.db('images').where({ owner, name }).first('id')) !== undefined;
  }
}
