/** Rows of `revisions`, through knex. Every read names its image; the service decides whose image it is. */
import type { Knex } from 'knex';
import { writeAudit, type AuditEntry } from '../audit/store.js';
import { toDate } from '../store/rows.js';
import type { Revision, RevisionReason } from './schema.js';

type Row = Record<string, unknown>;

/** A revision as the service records it; its number is the image's next. */
export type NewRevision = Omit<Revision, 'id' | 'number' | 'updatedAt'>;

function revisionFromRow(r: Row): Revision {
  return {
    id: Number(r.id),
    imageId: Number(r.image_id),
    owner: String(r.owner),
    number: Number(r.number),
    reference: String(r.reference),
    digest: String(r.digest),
    manifestDigest: r.manifest_digest === null || r.manifest_digest === undefined ? null : String(r.manifest_digest),
    platform: String(r.platform),
    checkId: r.check_id === null || r.check_id === undefined ? null : Number(r.check_id),
    status: r.status === 'passed' ? 'passed' : 'failed',
    reason: r.reason as RevisionReason,
    buildId: r.build_id === null || r.build_id === undefined ? null : Number(r.build_id),
    buildNumber: r.build_number === null || r.build_number === undefined ? null : Number(r.build_number),
    createdAt: toDate(r.created_at),
    updatedAt: toDate(r.updated_at),
  };
}

export class RevisionStore {
  constructor(readonly db: Knex | Knex.Transaction) {}

  /** Runs `fn` in one transaction with a store bound to it. */
  async transaction<T>(fn: (store: RevisionStore) => Promise<T>): Promise<T> {
    return this.db.transaction((trx) => fn(new RevisionStore(trx)));
  }

  /**
   * Holds the image's row until the transaction ends (PostgreSQL; SQLite has
   * one writer anyway): two checks of one image that end at once number
   * their revisions one after the other. False when the image is gone.
   */
  async lockImage(imageId: number, owner: string): Promise<boolean> {
    return (await this.db('images').where({ id: imageId, owner }).forUpdate().first('id')) !== undefined;
  }

  /** The image's revisions, newest first. */
  async forImage(imageId: number): Promise<Revision[]> {
    return ((await this.db('revisions').where({ image_id: imageId }).orderBy('number', 'desc')) as Row[]).map(revisionFromRow);
  }

  /** The revisions of `owner`'s images, newest first per image. */
  async forImages(owner: string, imageIds: readonly number[]): Promise<Map<number, Revision[]>> {
    const result = new Map<number, Revision[]>();
    if (imageIds.length === 0) return result;
    const rows = (await this.db('revisions').where({ owner }).whereIn('image_id', imageIds).orderBy('number', 'desc')) as Row[];
    for (const revision of rows.map(revisionFromRow)) result.set(revision.imageId, [...(result.get(revision.imageId) ?? []), revision]);
    return result;
  }

  async byNumber(imageId: number, number: number): Promise<Revision | undefined> {
    const row = (await this.db('revisions').where({ image_id: imageId, number }).first()) as Row | undefined;
    return row ? revisionFromRow(row) : undefined;
  }

  /** The newest revision of the image whose launch digest (platform manifest) is `digest`. */
  async byLaunchDigest(imageId: number, digest: string): Promise<Revision | undefined> {
    const row = (await this.db('revisions')
      .where({ image_id: imageId })
      .where((q) => q.where({ manifest_digest: digest }).orWhere((p) => p.whereNull('manifest_digest').where({ digest })))
      .orderBy('number', 'desc')
      .first()) as Row | undefined;
    return row ? revisionFromRow(row) : undefined;
  }

  async newest(imageId: number): Promise<Revision | undefined> {
    const row = (await this.db('revisions').where({ image_id: imageId }).orderBy('number', 'desc').first()) as Row | undefined;
    return row ? revisionFromRow(row) : undefined;
  }

  /** Records the image's next revision; call with the image locked ({@link lockImage}). */
  async insert(revision: NewRevision): Promise<Revision> {
    const [max] = (await this.db('revisions').where({ image_id: revision.imageId }).max({ n: 'number' })) as Array<{ n: unknown }>;
    const number = Number(max?.n ?? 0) + 1;
    const [row] = (await this.db('revisions')
      .insert({
        image_id: revision.imageId,
        owner: revision.owner,
        number,
        reference: revision.reference,
        digest: revision.digest,
        manifest_digest: revision.manifestDigest,
        platform: revision.platform,
        check_id: revision.checkId,
        status: revision.status,
        reason: revision.reason,
        build_id: revision.buildId,
        build_number: revision.buildNumber,
        created_at: revision.createdAt,
        updated_at: revision.createdAt,
      })
      .returning('id')) as Array<{ id: number } | number>;
    const id = typeof row === 'object' ? Number(row.id) : Number(row);
    return { ...revision, id, number, updatedAt: revision.createdAt };
  }

  /** A newer check of a revision's content: its result is the revision's now. */
  async checkedAgain(id: number, checkId: number, status: Revision['status'], now: Date): Promise<void> {
    await this.db('revisions')
      .where({ id })
      .where((q) => q.whereNull('check_id').orWhere('check_id', '<', checkId))
      .update({ check_id: checkId, status, updated_at: now });
  }

  /**
   * The owner accepts a moved tag's new content: the candidate check becomes
   * the image's own (and the image follows the reference it read, when the
   * image was pinned), with its audit entry, in one transaction. False, and
   * nothing written, when the check is no finished candidate of the image.
   */
  async adoptCandidate(
    owner: string,
    imageId: number,
    checkId: number,
    reference: string | undefined,
    entry: AuditEntry,
    now: Date,
  ): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      const adopted = await trx('checks')
        .where({ id: checkId, owner, image_id: imageId, candidate: true })
        .whereIn('status', ['passed', 'failed'])
        .update({ candidate: false });
      if (adopted !== 1) return false;
      if (reference !== undefined) {
        await trx('images').where({ owner, id: imageId }).update({ reference, reference_input: reference, updated_at: now });
      }
      await writeAudit(trx, [{ entry, at: now }]);
      return true;
    });
  }
}
