/**
 * Inventories as the API answers them and the check page's table shows
 * them (searchable with `?q=` without JavaScript, as you type with it).
 */
import { z } from 'zod';
import type { ImageInventory } from '../inventory/service.js';
import { InventorySchema, type Inventory } from '../inventory/schema.js';

/** `GET api/v1/users/{name}/images/{id}/packages`. */
export const PackagesResponseSchema = z.object({
  imageId: z.number().int().positive(),
  /** The platform manifest's digest the image's newest check read; null before one did. */
  digest: z.string().nullable(),
  platform: z.string().nullable(),
  checkId: z.number().int().positive().nullable(),
  /** Null until a check has read the image since inventories are kept. */
  inventory: InventorySchema.nullable(),
});
export type PackagesResponse = z.infer<typeof PackagesResponseSchema>;

export function presentPackages(found: ImageInventory): PackagesResponse {
  return PackagesResponseSchema.parse(found);
}

/** The longest search the table takes; longer input is cut (a search, not a command). */
const QUERY_CHARS = 100;

/** `?q=` as the page reads it: the first value, trimmed and cut. */
export function tableQuery(raw: unknown): string {
  const value = Array.isArray(raw) ? raw[0] : raw;
  return typeof value === 'string' ? value.trim().slice(0, QUERY_CHARS) : '';
}

interface Row {
  kind: string;
  name: string;
  version: string;
  detail: string;
  /** What the filter matches, lower case: kind, name, version and detail. */
  search: string;
}

function row(kind: string, name: string, version: string, detail: string): Row {
  return { kind, name, version, detail, search: `${kind} ${name} ${version} ${detail}`.toLowerCase() };
}

/** Every package of an inventory as rows of one table, filtered by `q` (words that must all appear). */
export function inventoryTable(inventory: Inventory, q: string) {
  const rows: Row[] = [
    ...inventory.pythonPackages.map((p) => row('Python', p.name, p.version, [p.installer, p.location].filter(Boolean).join(' · '))),
    ...inventory.condaPackages.map((p) => row('conda', p.name, p.version, [p.build, p.channel].filter(Boolean).join(' · '))),
    ...(inventory.osPackages?.packages ?? []).map((p) => row(inventory.osPackages?.manager ?? 'OS', p.name, p.version, p.arch ?? '')),
  ];
  const words = q.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = words.length === 0 ? rows : rows.filter((r) => words.every((w) => r.search.includes(w)));
  const jupyter = Object.entries(inventory.jupyter)
    .filter((e): e is [string, string] => e[1] !== null)
    .map(([name, version]) => ({ name, version }));
  return {
    python: inventory.python,
    otherPythons: inventory.pythons.filter((p) => p.executable !== inventory.python?.executable),
    jupyter,
    kernelspecs: inventory.kernelspecs,
    cuda: inventory.cuda.cuda || inventory.cuda.cudnn ? inventory.cuda : undefined,
    incomplete: inventory.incomplete,
    rows: shown,
    total: rows.length,
    shownCount: shown.length,
    filtered: words.length > 0,
    q,
  };
}
