/**
 * Inventories in the database, one row per platform manifest digest and
 * platform, gzip-compressed JSON. A digest names the image's content for
 * good, so a row never goes stale; only a change of the inventory's shape
 * (its version) makes the next check record it again.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Knex } from 'knex';
import type { RuleInputs } from '../inspect/rules.js';
import { INVENTORY_VERSION, InventorySchema, RuleInputsSchema, type Inventory } from './schema.js';
import { inventorySummary } from './summary.js';

type Row = Record<string, unknown>;

/** Where an inventory is kept: the manifest digest a launch starts, and its platform (`linux/amd64`). */
export interface InventoryKey {
  digest: string;
  platform: string;
}

function decode(data: unknown): Inventory | undefined {
  const parsed = InventorySchema.safeParse(JSON.parse(gunzipSync(data as Buffer).toString('utf8')));
  return parsed.success ? parsed.data : undefined;
}

export class InventoryStore {
  constructor(private readonly db: Knex) {}

  /** The inventory of `digest` on `platform`, if one of the current version was recorded. */
  async get(digest: string, platform: string): Promise<Inventory | undefined> {
    const row = (await this.db('inventories').where({ digest, platform, version: INVENTORY_VERSION }).first('data')) as Row | undefined;
    return row ? decode(row.data) : undefined;
  }

  /** Whether an inventory of the current version is kept for `digest` on `platform` (without reading it). */
  async has(digest: string, platform: string): Promise<boolean> {
    return (await this.db('inventories').where({ digest, platform, version: INVENTORY_VERSION }).first('digest')) !== undefined;
  }

  /**
   * The inventories of many digests, one query; keys without one are absent
   * from the map, which is keyed by `digest + ' ' + platform` ({@link inventoryKey}).
   */
  async getMany(keys: readonly InventoryKey[]): Promise<Map<string, Inventory>> {
    const found = new Map<string, Inventory>();
    await this.eachRow(keys, ['data'], (key, r) => {
      const inventory = decode(r.data);
      if (inventory) found.set(key, inventory);
    });
    return found;
  }

  /** The tile's line of each digest's inventory, from the column beside it (no inventory is decompressed). */
  async summariesMany(keys: readonly InventoryKey[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    await this.eachRow(keys, ['summary'], (key, r) => found.set(key, String(r.summary)));
    return found;
  }

  /** Rows of the current version for `keys`, read in chunks that keep the IN list under both databases' parameter limits. */
  private async eachRow(keys: readonly InventoryKey[], columns: string[], take: (key: string, row: Row) => void): Promise<void> {
    const wanted = new Set(keys.map(inventoryKey));
    const digests = [...new Set(keys.map((k) => k.digest))];
    for (let i = 0; i < digests.length; i += 500) {
      const rows = (await this.db('inventories')
        .whereIn('digest', digests.slice(i, i + 500))
        .where({ version: INVENTORY_VERSION })
        .select('digest', 'platform', ...columns)) as Row[];
      for (const r of rows) {
        const key = inventoryKey({ digest: String(r.digest), platform: String(r.platform) });
        if (wanted.has(key)) take(key, r);
      }
    }
  }

  /**
   * What the version rules read of many digests' inventories (a forecast),
   * from the small column beside each: no inventory is decompressed.
   */
  async ruleInputsMany(keys: readonly InventoryKey[]): Promise<Map<string, RuleInputs>> {
    const found = new Map<string, RuleInputs>();
    await this.eachRow(keys, ['rule_inputs'], (key, r) => found.set(key, RuleInputsSchema.parse(JSON.parse(String(r.rule_inputs)))));
    return found;
  }

  /** Keeps the inventory of `digest` on `platform`, replacing one of an older version. */
  async put(digest: string, platform: string, inventory: Inventory, now = new Date()): Promise<void> {
    const parsed = InventorySchema.parse(inventory);
    const data = gzipSync(JSON.stringify(parsed));
    await this.db('inventories')
      .insert({
        digest,
        platform,
        version: INVENTORY_VERSION,
        data,
        rule_inputs: JSON.stringify(parsed.ruleInputs),
        summary: inventorySummary(parsed),
        created_at: now,
      })
      .onConflict(['digest', 'platform'])
      .merge(['version', 'data', 'rule_inputs', 'summary', 'created_at']);
  }
}

/** The map key of {@link InventoryStore.getMany}. */
export function inventoryKey(key: InventoryKey): string {
  return `${key.digest} ${key.platform}`;
}
