/**
 * What a launch reads, in one statement: the image, its credential, its
 * newest check and its system. The hook asks at every server start, so this
 * is the service's hottest read: one round trip instead of four, and SQL
 * written once rather than compiled by the query builder at every call.
 */
import type { Knex } from 'knex';
import { checkFromRow, type CheckRow } from '../checks/store.js';
import { credentialFromRow, imageFromRow, type CredentialRow, type ImageRow } from '../images/store.js';
import type { System } from '../systems/schema.js';
import { systemFromRow } from '../systems/store.js';

type Row = Record<string, unknown>;

const IMAGE_COLUMNS = ['id', 'owner', 'name', 'system', 'reference_input', 'reference', 'registry', 'mount_path', 'created_at', 'updated_at'];
const CREDENTIAL_COLUMNS = ['id', 'registry', 'username', 'ciphertext', 'nonce', 'key_id', 'updated_at'];
// Everything a launch decides on; not the check's log or progress.
const CHECK_COLUMNS = ['id', 'system', 'reference', 'digest', 'manifest_digest', 'platform', 'policy_hash', 'kind', 'status', 'findings', 'facts', 'reused_from', 'created_at', 'started_at', 'finished_at', 'duration_ms', 'runner', 'heartbeat_at', 'attempts'];
const SYSTEM_COLUMNS = ['slug', 'display_name', 'description', 'enabled', 'allowed_registries', 'mount_prefixes', 'default_mount_path', 'platform', 'spawner', 'policy'];

/** Columns of `table` under a prefix, so that the joined tables do not overwrite each other's. */
function select(table: string, columns: string[], prefix: string): string {
  return columns.map((c) => `${table}.${c} as ${prefix}${c}`).join(', ');
}

/** Takes the columns with `prefix` back out of a joined row. */
function unprefixed(row: Row, prefix: string): Row {
  const out: Row = {};
  for (const [key, value] of Object.entries(row)) if (key.startsWith(prefix)) out[key.slice(prefix.length)] = value;
  return out;
}

// Plain SQL that SQLite and PostgreSQL both read (knex turns ? into $n for pg).
const LAUNCH_SQL = `select ${select('images', IMAGE_COLUMNS, 'image_')}, ${select('credentials', CREDENTIAL_COLUMNS, 'credential_')},
  ${select('checks', CHECK_COLUMNS, 'check_')}, ${select('systems', SYSTEM_COLUMNS, 'system_')}
from images
left join credentials on credentials.image_id = images.id and credentials.owner = images.owner
left join checks on checks.id = (select max(newest.id) from checks newest where newest.image_id = images.id and newest.owner = images.owner)
left join systems on systems.slug = images.system
where images.owner = ? and images.id = ?`;

export interface LaunchRows {
  image: ImageRow;
  credential: CredentialRow | undefined;
  check: CheckRow | undefined;
  /** The image's system as stored; undefined when no such row exists (the configured default system has none). */
  system: System | undefined;
}

export class LaunchStore {
  constructor(private readonly db: Knex) {}

  /** The rows of `owner`'s image `id`; undefined when there is no such image of theirs. */
  async load(owner: string, id: number): Promise<LaunchRows | undefined> {
    const result = (await this.db.raw(LAUNCH_SQL, [owner, id])) as Row[] | { rows: Row[] };
    const row = (Array.isArray(result) ? result : result.rows)[0];
    if (!row) return undefined;
    const image = imageFromRow(unprefixed(row, 'image_'));
    const present = (prefix: string, key: string) => row[`${prefix}${key}`] !== null && row[`${prefix}${key}`] !== undefined;
    return {
      image,
      credential: present('credential_', 'id') ? credentialFromRow({ ...unprefixed(row, 'credential_'), image_id: image.id, owner: image.owner }) : undefined,
      check: present('check_', 'id') ? checkFromRow({ ...unprefixed(row, 'check_'), image_id: image.id, owner: image.owner }) : undefined,
      system: present('system_', 'slug') ? systemFromRow(unprefixed(row, 'system_')) : undefined,
    };
  }
}
