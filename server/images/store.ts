/**
 * Rows of `images` and `credentials`, and the audit trail, through knex.
 * Every query is scoped by owner: another user's id finds nothing.
 */
import type { Knex } from 'knex';
import { auditOf, imageTarget, writeAudit, type AuditEntry, type StoredAuditEntry } from '../audit/store.js';
import type { Sealed } from '../secrets/keyring.js';
import { sealedFromRow, sealedToColumns, toDate } from '../store/rows.js';

export interface ImageRow {
  id: number;
  owner: string;
  name: string;
  /** The owner's description, plain text ('' for none). */
  description: string;
  system: string;
  referenceInput: string;
  reference: string;
  registry: string;
  mountPath: string | null;
  /**
   * Set when an admin published the image for everyone on its system: the
   * digest they published (null for publications from before digests were
   * recorded), offered only while the image is checked at that digest (sharing/publication.ts).
   */
  published: { at: Date; by: string; description: string; digest: string | null } | null;
  /** Launches of the image by users other than its owner (shared or published). */
  launchesByOthers: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface CredentialRow extends Sealed {
  id: string;
  imageId: number;
  owner: string;
  registry: string;
  username: string;
  updatedAt: Date;
}

/** What a save writes; without a description, the column's default ('') on insert, and unchanged on update. */
export type ImageFields = Omit<ImageRow, 'id' | 'createdAt' | 'updatedAt' | 'published' | 'launchesByOthers' | 'description'> & {
  description?: string;
};

type Row = Record<string, unknown>;

/** The columns {@link imageFromRow} reads; a query that joins images selects these. */
export const IMAGE_COLUMNS = [
  'id',
  'owner',
  'name',
  'description',
  'system',
  'reference_input',
  'reference',
  'registry',
  'mount_path',
  'published_at',
  'published_by',
  'published_description',
  'published_digest',
  'launches_by_others',
  'created_at',
  'updated_at',
] as const;

/** The columns {@link credentialFromRow} reads. */
export const CREDENTIAL_COLUMNS = [
  'id',
  'image_id',
  'owner',
  'registry',
  'username',
  'ciphertext',
  'nonce',
  'key_id',
  'updated_at',
] as const;

/** An `images` row to its record (also used by queries that join it). */
export function imageFromRow(r: Row): ImageRow {
  return {
    id: Number(r.id),
    owner: String(r.owner),
    name: String(r.name),
    description: String(r.description ?? ''),
    system: String(r.system),
    referenceInput: String(r.reference_input),
    reference: String(r.reference),
    registry: String(r.registry),
    mountPath: r.mount_path === null ? null : String(r.mount_path),
    published:
      r.published_at === null || r.published_at === undefined
        ? null
        : {
            at: toDate(r.published_at),
            by: String(r.published_by),
            description: String(r.published_description ?? ''),
            digest: r.published_digest === null || r.published_digest === undefined ? null : String(r.published_digest),
          },
    launchesByOthers: Number(r.launches_by_others ?? 0),
    createdAt: toDate(r.created_at),
    updatedAt: toDate(r.updated_at),
  };
}

/** A `credentials` row to its record (also used by queries that join it). */
export function credentialFromRow(r: Row): CredentialRow {
  return {
    id: String(r.id),
    imageId: Number(r.image_id),
    owner: String(r.owner),
    registry: String(r.registry),
    username: String(r.username),
    ...sealedFromRow(r),
    updatedAt: toDate(r.updated_at),
  };
}

/** The columns a user's edit sets. */
function editableColumns(fields: Omit<ImageFields, 'owner'>): Record<string, string | null> {
  return {
    name: fields.name,
    // Only when given: a row saved without one gets the column's default ('').
    ...(fields.description === undefined ? {} : { description: fields.description }),
    system: fields.system,
    reference_input: fields.referenceInput,
    reference: fields.reference,
    registry: fields.registry,
    mount_path: fields.mountPath,
  };
}

/** The queries on images, credentials and audit, bound to a connection or a transaction. */
export class ImageStore {
  constructor(readonly db: Knex | Knex.Transaction) {}

  /** Runs `fn` in one transaction with a store bound to it. */
  async transaction<T>(fn: (store: ImageStore) => Promise<T>): Promise<T> {
    return this.db.transaction((trx) => fn(new ImageStore(trx)));
  }

  async list(owner: string): Promise<ImageRow[]> {
    const rows = (await this.db('images').where({ owner }).orderBy('id')) as Row[];
    return rows.map(imageFromRow);
  }

  async get(owner: string, id: number): Promise<ImageRow | undefined> {
    const row = (await this.db('images').where({ owner, id }).first()) as Row | undefined;
    return row ? imageFromRow(row) : undefined;
  }

  async insert(fields: ImageFields, now: Date): Promise<number> {
    const [row] = (await this.db('images')
      .insert({ owner: fields.owner, ...editableColumns(fields), created_at: now, updated_at: now })
      .returning('id')) as Array<{ id: number } | number>;
    return typeof row === 'object' ? Number(row.id) : Number(row);
  }

  /** A built image's new build: the reference it was pushed as (the input shown is the same). */
  async setReference(owner: string, id: number, reference: string, now: Date): Promise<void> {
    await this.db('images').where({ owner, id }).update({ reference, reference_input: reference, updated_at: now });
  }

  /** Whether `owner` has an image called `name`. */
  async nameTaken(owner: string, name: string): Promise<boolean> {
    return (await this.db('images').where({ owner, name }).first('id')) !== undefined;
  }

  async update(owner: string, id: number, fields: Omit<ImageFields, 'owner'>, now: Date): Promise<void> {
    await this.db('images')
      .where({ owner, id })
      .update({ ...editableColumns(fields), updated_at: now });
  }

  /**
   * Deletes the image, its credential rows and its shares (its builds and
   * their checks go with it by foreign key); returns whether the image
   * existed. Uploaded build files are stored once per content
   * (builds/store.ts): those no other build names go too.
   */
  async delete(owner: string, id: number): Promise<boolean> {
    await this.db('credentials').where({ owner, image_id: id }).delete();
    await this.db('image_shares').whereIn('image_id', this.db('images').select('id').where({ owner, id })).delete();
    const named = (await this.db('build_inputs')
      .join('builds', 'builds.id', 'build_inputs.build_id')
      .where({ 'builds.owner': owner, 'builds.image_id': id })
      .distinct('build_inputs.sha256')
      .pluck('build_inputs.sha256')) as string[];
    const deleted = await this.db('images').where({ owner, id }).delete();
    if (named.length > 0) await this.deleteUnnamedFiles(named);
    return deleted > 0;
  }

  /**
   * Deletes those of `contents` that no build names any more. A build saved
   * at the same moment may name one of them: its foreign key then refuses
   * the delete (PostgreSQL waits for that build's transaction, then sees
   * it), and the content stays, as it should; so this runs in a savepoint
   * of its own, whose failure leaves the image's deletion standing.
   */
  private async deleteUnnamedFiles(contents: string[]): Promise<void> {
    await this.db
      .transaction(async (trx) => {
        await trx('build_files')
          .whereIn('sha256', contents)
          .whereNotExists(trx('build_inputs').select(trx.raw('1')).whereRaw('build_inputs.sha256 = build_files.sha256'))
          .delete();
      })
      .catch(() => undefined);
  }

  /** Any user's image by id, for sharing (whoever asks is checked by the sharing rules). */
  async getById(id: number): Promise<ImageRow | undefined> {
    const row = (await this.db('images').where({ id }).first()) as Row | undefined;
    return row ? imageFromRow(row) : undefined;
  }

  /** Publishes the image for everyone on its system, or withdraws it (null). */
  async setPublished(id: number, published: ImageRow['published']): Promise<void> {
    await this.db('images')
      .where({ id })
      .update({
        published_at: published?.at ?? null,
        published_by: published?.by ?? null,
        published_description: published?.description ?? null,
        published_digest: published?.digest ?? null,
      });
  }

  /** Counts a launch by someone other than the owner. */
  async countLaunchByOther(id: number): Promise<void> {
    await this.db('images').where({ id }).increment('launches_by_others', 1);
  }

  async credentialFor(owner: string, imageId: number): Promise<CredentialRow | undefined> {
    const row = (await this.db('credentials').where({ owner, image_id: imageId }).first()) as Row | undefined;
    return row ? credentialFromRow(row) : undefined;
  }

  /** Credentials of many images at once, by image id. */
  async credentialsFor(owner: string, imageIds: number[]): Promise<Map<number, CredentialRow>> {
    if (imageIds.length === 0) return new Map();
    const rows = (await this.db('credentials').where({ owner }).whereIn('image_id', imageIds)) as Row[];
    return new Map(rows.map((r) => [Number(r.image_id), credentialFromRow(r)]));
  }

  async putCredential(credential: Omit<CredentialRow, 'updatedAt'>, now: Date): Promise<void> {
    await this.db('credentials').where({ image_id: credential.imageId }).delete();
    await this.db('credentials').insert({
      id: credential.id,
      image_id: credential.imageId,
      owner: credential.owner,
      registry: credential.registry,
      username: credential.username,
      ...sealedToColumns(credential),
      updated_at: now,
    });
  }

  async updateCredentialUsername(owner: string, imageId: number, username: string, now: Date): Promise<void> {
    await this.db('credentials').where({ owner, image_id: imageId }).update({ username, updated_at: now });
  }

  async deleteCredential(owner: string, imageId: number): Promise<void> {
    await this.db('credentials').where({ owner, image_id: imageId }).delete();
  }

  /** Every credential, for key rotation. */
  async allCredentials(): Promise<CredentialRow[]> {
    return ((await this.db('credentials').orderBy('id')) as Row[]).map(credentialFromRow);
  }

  async resealCredential(id: string, sealed: Sealed, now: Date): Promise<void> {
    await this.db('credentials')
      .where({ id })
      .update({ ...sealedToColumns(sealed), updated_at: now });
  }

  async audit(entry: AuditEntry, now: Date): Promise<void> {
    await writeAudit(this.db, [{ entry, at: now }]);
  }

  /** The newest `limit` audit entries about image `id` with one of `actions`, newest first (its history). */
  async auditOf(id: number, actions: readonly string[], limit: number): Promise<StoredAuditEntry[]> {
    return auditOf(this.db, imageTarget(id), actions, limit);
  }
}
