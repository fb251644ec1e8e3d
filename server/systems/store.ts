/** Systems and admin registry credentials, through knex. */
import type { Knex } from 'knex';
import { writeAudit, type AuditEntry } from '../audit/store.js';
import type { Sealed } from '../secrets/keyring.js';
import { fromJson, sealedFromRow, sealedToColumns, toDate } from '../store/rows.js';
import { BuildSettingsSchema, ImagePolicySchema, NO_BUILDS, type System } from './schema.js';
import { StorageSettingsSchema } from './storage.js';

type Row = Record<string, unknown>;

/** The columns {@link systemFromRow} reads. */
export const SYSTEM_COLUMNS = [
  'slug',
  'display_name',
  'description',
  'enabled',
  'allowed_registries',
  'mount_prefixes',
  'default_mount_path',
  'platform',
  'spawner',
  'policy',
  'build',
  'storage',
  'kept_revisions',
] as const;

/** The columns {@link registryCredentialFromRow} reads. */
export const REGISTRY_CREDENTIAL_COLUMNS = [
  'id',
  'pattern',
  'username',
  'ciphertext',
  'nonce',
  'key_id',
  'updated_by',
  'updated_at',
] as const;

/** A `systems` row to its record (also used by queries that join it). */
export function systemFromRow(r: Row): System {
  return {
    slug: String(r.slug),
    displayName: String(r.display_name),
    description: String(r.description ?? ''),
    enabled: Boolean(r.enabled),
    allowedRegistries: fromJson<string[]>(r.allowed_registries),
    mountPrefixes: fromJson<string[]>(r.mount_prefixes),
    defaultMountPath: String(r.default_mount_path),
    platform: String(r.platform),
    spawner: r.spawner as System['spawner'],
    policy: ImagePolicySchema.parse(fromJson(r.policy)),
    build: r.build === null || r.build === undefined ? NO_BUILDS : BuildSettingsSchema.parse(fromJson(r.build)),
    storage: r.storage === null || r.storage === undefined ? undefined : StorageSettingsSchema.parse(fromJson(r.storage)),
    ...(r.kept_revisions === null || r.kept_revisions === undefined ? {} : { keptRevisions: Number(r.kept_revisions) }),
  };
}

function toRow(s: System): Row {
  return {
    slug: s.slug,
    display_name: s.displayName,
    description: s.description,
    enabled: s.enabled,
    allowed_registries: JSON.stringify(s.allowedRegistries),
    mount_prefixes: JSON.stringify(s.mountPrefixes),
    default_mount_path: s.defaultMountPath,
    platform: s.platform,
    spawner: s.spawner,
    policy: JSON.stringify(s.policy),
    build: JSON.stringify(s.build),
    storage: s.storage ? JSON.stringify(s.storage) : null,
    kept_revisions: s.keptRevisions ?? null,
  };
}

export interface RegistryCredentialRow extends Sealed {
  id: string;
  pattern: string;
  username: string;
  updatedBy: string;
  updatedAt: Date;
}

/** A `registry_credentials` row to its record (also used by the launch's joined query). */
export function registryCredentialFromRow(r: Row): RegistryCredentialRow {
  return {
    id: String(r.id),
    pattern: String(r.pattern),
    username: String(r.username),
    ...sealedFromRow(r),
    updatedBy: String(r.updated_by),
    updatedAt: toDate(r.updated_at),
  };
}

export class SystemStore {
  constructor(private readonly db: Knex | Knex.Transaction) {}

  /** Runs `fn` in one transaction with a store bound to it. */
  async transaction<T>(fn: (store: SystemStore) => Promise<T>): Promise<T> {
    return this.db.transaction((trx) => fn(new SystemStore(trx)));
  }

  async audit(entry: AuditEntry, now: Date): Promise<void> {
    await writeAudit(this.db, [{ entry, at: now }]);
  }

  async list(): Promise<System[]> {
    return ((await this.db('systems').orderBy('display_name')) as Row[]).map(systemFromRow);
  }

  async get(slug: string): Promise<System | undefined> {
    const row = (await this.db('systems').where({ slug }).first()) as Row | undefined;
    return row ? systemFromRow(row) : undefined;
  }

  async count(): Promise<number> {
    const [row] = (await this.db('systems').count({ n: '*' })) as Array<{ n: number | string }>;
    return Number(row?.n ?? 0);
  }

  async insert(system: System, now: Date): Promise<void> {
    await this.db('systems').insert({ ...toRow(system), created_at: now, updated_at: now });
  }

  async update(system: System, now: Date): Promise<void> {
    const { slug, ...rest } = toRow(system);
    await this.db('systems')
      .where({ slug })
      .update({ ...rest, updated_at: now });
  }

  async credentials(): Promise<RegistryCredentialRow[]> {
    return ((await this.db('registry_credentials').orderBy('pattern')) as Row[]).map(registryCredentialFromRow);
  }

  async putCredential(row: Omit<RegistryCredentialRow, 'updatedAt'>, now: Date): Promise<void> {
    await this.db('registry_credentials').where({ pattern: row.pattern }).delete();
    await this.db('registry_credentials').insert({
      id: row.id,
      pattern: row.pattern,
      username: row.username,
      ...sealedToColumns(row),
      updated_by: row.updatedBy,
      updated_at: now,
    });
  }

  async deleteCredential(id: string): Promise<boolean> {
    return (await this.db('registry_credentials').where({ id }).delete()) > 0;
  }

  async resealCredential(id: string, sealed: Sealed, now: Date): Promise<void> {
    await this.db('registry_credentials')
      .where({ id })
      .update({ ...sealedToColumns(sealed), updated_at: now });
  }
}
