/**
 * What a launch reads, in one statement: the image, its credential, its
 * newest check, its system and the admin credentials for its registry. The
 * hook asks at every server start, so this is the service's hottest read:
 * one round trip instead of five, and SQL written once rather than compiled
 * by the query builder at every call, prepared once ({@link preparedRead}).
 */
import type { Knex } from 'knex';
import { checkFromRow, type CheckRow } from '../checks/store.js';
import { credentialFromRow, imageFromRow, type CredentialRow, type ImageRow } from '../images/store.js';
import { preparedRead, type PreparedRead, type ValuesRow } from '../store/db.js';
import type { System } from '../systems/schema.js';
import { registryCredentialFromRow, systemFromRow, type RegistryCredentialRow } from '../systems/store.js';

type Row = Record<string, unknown>;

const IMAGE_COLUMNS = ['id', 'owner', 'name', 'system', 'reference_input', 'reference', 'registry', 'mount_path', 'created_at', 'updated_at'];
const CREDENTIAL_COLUMNS = ['id', 'registry', 'username', 'ciphertext', 'nonce', 'key_id', 'updated_at'];
// Everything a launch decides on; not the check's log or progress.
const CHECK_COLUMNS = ['id', 'system', 'reference', 'digest', 'manifest_digest', 'platform', 'policy_hash', 'kind', 'status', 'findings', 'facts', 'reused_from', 'created_at', 'started_at', 'finished_at', 'duration_ms', 'runner', 'heartbeat_at', 'attempts'];
const SYSTEM_COLUMNS = ['slug', 'display_name', 'description', 'enabled', 'allowed_registries', 'mount_prefixes', 'default_mount_path', 'platform', 'spawner', 'policy'];
const SITE_CREDENTIAL_COLUMNS = ['id', 'pattern', 'username', 'ciphertext', 'nonce', 'key_id', 'updated_by', 'updated_at'];

/**
 * One table's columns in the joined row, which comes as an array: each part
 * starts where the one before it ends. Aliased under a prefix all the same,
 * so that a row read as an object keeps every column.
 */
class Part {
  readonly start: number;
  readonly end: number;

  constructor(
    readonly table: string,
    private readonly columns: string[],
    private readonly prefix: string,
    after?: Part,
  ) {
    this.start = after?.end ?? 0;
    this.end = this.start + columns.length;
  }

  get select(): string {
    return this.columns.map((c) => `${this.table}.${c} as ${this.prefix}${c}`).join(', ');
  }

  /** This table's columns out of a joined row; undefined when the left join found no row. */
  of(row: ValuesRow): Row | undefined {
    const first = row[this.start];
    if (first === null || first === undefined) return undefined;
    const out: Row = {};
    for (const [i, column] of this.columns.entries()) out[column] = row[this.start + i];
    return out;
  }
}

const images = new Part('images', IMAGE_COLUMNS, 'image_');
const credentials = new Part('credentials', CREDENTIAL_COLUMNS, 'credential_', images);
const checks = new Part('checks', CHECK_COLUMNS, 'check_', credentials);
const systems = new Part('systems', SYSTEM_COLUMNS, 'system_', checks);
const siteCredentials = new Part('registry_credentials', SITE_CREDENTIAL_COLUMNS, 'site_', systems);

// Plain SQL that SQLite and PostgreSQL both read (knex turns ? into $n for pg).
// An admin credential's pattern starts with its registry host ("host", "host/team/*"): those of the
// image's host are its candidates (one row each); which one matches best is decided in code.
// Selected in the order the parts were chained.
const LAUNCH_SQL = `select ${[images, credentials, checks, systems, siteCredentials].map((part) => part.select).join(', ')}
from images
left join credentials on credentials.image_id = images.id and credentials.owner = images.owner
left join checks on checks.id = (select max(newest.id) from checks newest where newest.image_id = images.id and newest.owner = images.owner)
left join systems on systems.slug = images.system
left join registry_credentials on registry_credentials.pattern = images.registry
  or substr(registry_credentials.pattern, 1, length(images.registry) + 1) = images.registry || '/'
where images.owner = ? and images.id = ?`;

export interface LaunchRows {
  image: ImageRow;
  credential: CredentialRow | undefined;
  check: CheckRow | undefined;
  /** The image's system as stored; undefined when no such row exists (the configured default system has none). */
  system: System | undefined;
  /** The admin credentials for the image's registry host, for when the image has none of its own. */
  siteCredentials: RegistryCredentialRow[];
}

export class LaunchStore {
  private readonly read: PreparedRead;

  constructor(db: Knex) {
    this.read = preparedRead(db, LAUNCH_SQL);
  }

  /** The rows of `owner`'s image `id`; undefined when there is no such image of theirs. */
  async load(owner: string, id: number): Promise<LaunchRows | undefined> {
    const rows = await this.read.all([owner, id]);
    const row = rows[0];
    const imageRow = row && images.of(row);
    if (!row || !imageRow) return undefined;
    const image = imageFromRow(imageRow);
    const credential = credentials.of(row);
    const check = checks.of(row);
    const system = systems.of(row);
    return {
      image,
      credential: credential && credentialFromRow({ ...credential, image_id: image.id, owner: image.owner }),
      check: check && checkFromRow({ ...check, image_id: image.id, owner: image.owner }),
      system: system && systemFromRow(system),
      // Every row is the same image; they differ only in the admin credential joined.
      siteCredentials: rows.flatMap((r) => {
        const site = siteCredentials.of(r);
        return site ? [registryCredentialFromRow(site)] : [];
      }),
    };
  }

  close(): void {
    this.read.close();
  }
}
