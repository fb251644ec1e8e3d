/**
 * What a launch reads, in one statement: the image, its credential, its
 * newest check, its system and the admin credentials for its registry. The
 * hook asks at every server start: one round trip instead of five. Each
 * table's columns and their mapping are its own store's (a new image column
 * is added there, once); this store only joins them.
 */
import type { Knex } from 'knex';
import { CHECK_RESULT_COLUMNS, checkFromRow, type CheckRow } from '../checks/store.js';
import { CREDENTIAL_COLUMNS, IMAGE_COLUMNS, credentialFromRow, imageFromRow, type CredentialRow, type ImageRow } from '../images/store.js';
import type { System } from '../systems/schema.js';
import {
  REGISTRY_CREDENTIAL_COLUMNS,
  SYSTEM_COLUMNS,
  registryCredentialFromRow,
  systemFromRow,
  type RegistryCredentialRow,
} from '../systems/store.js';

type Row = Record<string, unknown>;

/** One joined table: its columns selected under a prefix, and read back out of a joined row. */
class Part {
  constructor(
    private readonly table: string,
    private readonly columns: readonly string[],
    private readonly prefix: string,
  ) {}

  get select(): string {
    return this.columns.map((c) => `${this.table}.${c} as ${this.prefix}${c}`).join(', ');
  }

  /** This table's columns of a joined row; undefined when the left join found no row. */
  of(row: Row): Row | undefined {
    if (row[`${this.prefix}${this.columns[0]}`] === null || row[`${this.prefix}${this.columns[0]}`] === undefined) return undefined;
    return Object.fromEntries(this.columns.map((c) => [c, row[`${this.prefix}${c}`]]));
  }
}

const images = new Part('images', IMAGE_COLUMNS, 'image_');
const credentials = new Part('credentials', CREDENTIAL_COLUMNS, 'credential_');
const checks = new Part('checks', CHECK_RESULT_COLUMNS, 'check_');
const systems = new Part('systems', SYSTEM_COLUMNS, 'system_');
const siteCredentials = new Part('registry_credentials', REGISTRY_CREDENTIAL_COLUMNS, 'site_');

// Plain SQL that SQLite and PostgreSQL both read (knex turns ? into $n for pg).
// An admin credential's pattern starts with its registry host ("host", "host/team/*"): those of the
// image's host are its candidates (one row each); which one matches best is decided in code.
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
  /** Without its log and progress. */
  check: CheckRow | undefined;
  /** The image's system as stored; undefined when no such row exists (the configured default system has none). */
  system: System | undefined;
  /** The admin credentials for the image's registry host, for when the image has none of its own. */
  siteCredentials: RegistryCredentialRow[];
}

export class LaunchStore {
  constructor(private readonly db: Knex) {}

  /** The rows of `owner`'s image `id`; undefined when there is no such image of theirs. */
  async load(owner: string, id: number): Promise<LaunchRows | undefined> {
    const result = (await this.db.raw(LAUNCH_SQL, [owner, id])) as Row[] | { rows: Row[] };
    const rows = Array.isArray(result) ? result : result.rows;
    const row = rows[0];
    const image = row && images.of(row);
    if (!row || !image) return undefined;
    const credential = credentials.of(row);
    const check = checks.of(row);
    const system = systems.of(row);
    return {
      image: imageFromRow(image),
      credential: credential && credentialFromRow(credential),
      check: check && checkFromRow(check),
      system: system && systemFromRow(system),
      // Every row is the same image; they differ only in the admin credential joined.
      siteCredentials: rows.flatMap((r) => {
        const site = siteCredentials.of(r);
        return site ? [registryCredentialFromRow(site)] : [];
      }),
    };
  }
}
