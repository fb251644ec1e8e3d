/**
 * What a launch reads, in one statement: the image, its credential, its
 * newest check (never a candidate: revisions/), its system and the admin
 * credentials for its registry. The
 * hook asks at every server start: one round trip instead of five. Each
 * table's columns and their mapping are its own store's (a new image column
 * is added there, once); this store only joins them.
 */
import { storedInputs } from '../builds/inputs.js';
import { selectArrays, type Knex } from '../store/db.js';
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

/**
 * One joined table: its columns in the select, read back out of a joined row
 * (an array of values, in the select's order: each part starts where the one
 * before it ends).
 */
class Part {
  readonly start: number;
  readonly end: number;

  constructor(
    private readonly table: string,
    private readonly columns: readonly string[],
    after?: Part,
  ) {
    this.start = after?.end ?? 0;
    this.end = this.start + columns.length;
  }

  get select(): string {
    return this.columns.map((c) => `${this.table}.${c}`).join(', ');
  }

  /** This table's columns of a joined row, by name; undefined when the left join found no row. */
  of(row: readonly unknown[]): Row | undefined {
    if (row[this.start] === null || row[this.start] === undefined) return undefined;
    const out: Row = {};
    for (let i = 0; i < this.columns.length; i++) out[this.columns[i]!] = row[this.start + i];
    return out;
  }
}

const images = new Part('images', IMAGE_COLUMNS);
const credentials = new Part('credentials', CREDENTIAL_COLUMNS, images);
const checks = new Part('checks', CHECK_RESULT_COLUMNS, credentials);
const systems = new Part('systems', SYSTEM_COLUMNS, checks);
const siteCredentials = new Part('registry_credentials', REGISTRY_CREDENTIAL_COLUMNS, systems);

// Plain SQL that SQLite and PostgreSQL both read (knex turns ? into $n for pg); the parts in their order.
// An admin credential's pattern starts with its registry host ("host", "host/team/*"): those of the
// image's host are its candidates (one row each); which one matches best is decided in code.
const LAUNCH_SQL = `select ${[images, credentials, checks, systems, siteCredentials].map((part) => part.select).join(', ')}
from images
left join credentials on credentials.image_id = images.id and credentials.owner = images.owner
left join checks on checks.id = (select max(newest.id) from checks newest where newest.image_id = images.id and newest.owner = images.owner and newest.candidate = false)
left join systems on systems.slug = images.system
left join registry_credentials on registry_credentials.pattern = images.registry
  or substr(registry_credentials.pattern, 1, length(images.registry) + 1) = images.registry || '/'
where images.id = ?`;

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

  /** The rows of image `id`, whoever owns it (the launch decides who may use it); undefined when there is none. */
  async load(id: number): Promise<LaunchRows | undefined> {
    // Arrays, not objects: an object with a key per column of five tables cost more than the query.
    const rows = await selectArrays(this.db, LAUNCH_SQL, [id]);
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

  /**
   * Whether the image's reference is the push of one of its builds from a
   * git repository by repo2docker's rules (a launch link's, or the form's
   * repository mode): the repository's files may be anyone's.
   */
  async builtFromRepository(imageId: number, reference: string): Promise<boolean> {
    // A build's push is `target@digest`: the one build it can be is looked up, not every build's inputs read.
    const at = reference.lastIndexOf('@');
    if (at < 0) return false;
    const row = (await this.db('builds')
      .where({ image_id: imageId, status: 'succeeded', target: reference.slice(0, at), digest: reference.slice(at + 1) })
      .first('inputs')) as { inputs: unknown } | undefined;
    return row !== undefined && storedInputs(row.inputs).mode === 'repository';
  }
}
