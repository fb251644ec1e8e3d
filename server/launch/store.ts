/**
 * What a launch reads, in one query: the image, its credential and its
 * newest check. The hook asks at every server start, so this is the service's
 * hottest read; one round trip instead of three.
 */
import type { Knex } from 'knex';
import { checkFromRow, type CheckRow } from '../checks/store.js';
import { credentialFromRow, imageFromRow, type CredentialRow, type ImageRow } from '../images/store.js';

type Row = Record<string, unknown>;

const CREDENTIAL_COLUMNS = ['id', 'registry', 'username', 'ciphertext', 'nonce', 'key_id', 'updated_at'];
// Everything a launch decides on; not the check's log or progress.
const CHECK_COLUMNS = ['id', 'system', 'reference', 'digest', 'manifest_digest', 'platform', 'policy_hash', 'kind', 'status', 'findings', 'facts', 'reused_from', 'created_at', 'started_at', 'finished_at', 'duration_ms', 'runner', 'heartbeat_at', 'attempts'];

/** The columns of `table` prefixed, so that joined tables do not overwrite each other's. */
function prefixed(table: string, columns: string[], prefix: string): string[] {
  return columns.map((c) => `${table}.${c} as ${prefix}${c}`);
}

/** Takes the columns with `prefix` back out of a joined row. */
function unprefixed(row: Row, prefix: string): Row {
  const out: Row = {};
  for (const [key, value] of Object.entries(row)) if (key.startsWith(prefix)) out[key.slice(prefix.length)] = value;
  return out;
}

export interface LaunchRows {
  image: ImageRow;
  credential: CredentialRow | undefined;
  check: CheckRow | undefined;
}

export class LaunchStore {
  constructor(private readonly db: Knex) {}

  /** The rows of `owner`'s image `id`; undefined when there is no such image of theirs. */
  async load(owner: string, id: number): Promise<LaunchRows | undefined> {
    const row = (await this.db('images')
      .leftJoin('credentials', (on) => on.on('credentials.image_id', 'images.id').andOn('credentials.owner', 'images.owner'))
      .leftJoin('checks', (on) => on.on('checks.id', this.db.raw('(select max(newest.id) from checks as newest where newest.image_id = images.id and newest.owner = images.owner)')))
      .where({ 'images.owner': owner, 'images.id': id })
      .first('images.*', ...prefixed('credentials', CREDENTIAL_COLUMNS, 'credential_'), ...prefixed('checks', CHECK_COLUMNS, 'check_'))) as Row | undefined;
    if (!row) return undefined;
    const image = imageFromRow(row);
    const credential = row.credential_id === null || row.credential_id === undefined ? undefined : credentialFromRow({ ...unprefixed(row, 'credential_'), image_id: image.id, owner: image.owner });
    const check = row.check_id === null || row.check_id === undefined ? undefined : checkFromRow({ ...unprefixed(row, 'check_'), image_id: image.id, owner: image.owner });
    return { image, credential, check };
  }
}
