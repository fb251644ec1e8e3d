/**
 * Forecasts for hub admins: before upgrading the hub (or changing a
 * system's rules) an admin sees which images in use on the system would
 * fail or warn, and why, judged from their stored inventories with the
 * check's own rules (forecast.ts), without a download. Once published,
 * each owner sees their image's line on its tile.
 */
import { z } from 'zod';
import type { CheckRow } from '../checks/store.js';
import { invalidInput, notFound } from '../errors.js';
import { inputError } from '../forms.js';
import type { AccessRules } from '../hub/access.js';
import type { HubIdentity } from '../hub/identity.js';
import type { System, SystemCatalog } from '../systems/schema.js';
import { ForecastTargetSchema, judge, type ForecastTarget, type ForecastVerdict } from './forecast.js';
import type { ForecastResult, ForecastRow, ForecastStore } from './forecastStore.js';
import { checkedDigestOf } from './service.js';
import { inventoryKey, type InventoryStore } from './store.js';

const flag = z.union([z.boolean(), z.enum(['on', 'true', '1', 'false', '0', ''])]).optional();
const text = z.string().max(40, 'At most 40 characters').optional();

/**
 * What the admin form posts and the API takes: a field left out keeps the
 * system's value (the hub's version now); an empty one means none. The
 * form says `fromForm`, where an unticked box is absent and means no.
 */
const ForecastInputSchema = z.object({
  hubVersion: z.union([text, z.null()]),
  pythonMin: text,
  pythonMax: text,
  requirePip: flag,
  requireUser: flag,
  fromForm: z.unknown().optional(),
});

const yes = (v: z.infer<typeof flag>) => v === true || v === 'on' || v === 'true' || v === '1';

/** One image's line on its owner's tile: what a published forecast says of it. */
export interface ForecastNote {
  forecastId: number;
  verdict: ForecastVerdict;
  /** "JupyterHub 5.2" and/or the rules changed. */
  planned: string;
  reasons: string[];
}

export interface ForecastServiceDeps {
  store: ForecastStore;
  inventories: Pick<InventoryStore, 'ruleInputsMany'>;
  systems: Pick<SystemCatalog, 'get'>;
  access: AccessRules;
  /** The hub's version now (the check's comparison when the admin enters none). */
  hubVersion: () => Promise<string | undefined>;
  /** The newest check of each of a user's images (for the tiles: a note is shown only while the image is at the judged digest). */
  checks: { latestFor(owner: string, imageIds: number[]): Promise<Map<number, Pick<CheckRow, 'status' | 'digest' | 'manifestDigest'>>> };
  now?: () => Date;
}

export class ForecastService {
  private readonly now: () => Date;

  constructor(private readonly deps: ForecastServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** The target of `raw` on `system`: what the admin entered, the system's rules for what they left out. */
  async targetOf(system: System, raw: unknown): Promise<ForecastTarget> {
    const parsed = ForecastInputSchema.safeParse(raw ?? {});
    if (!parsed.success) throw inputError(parsed.error, 'forecast');
    const input = parsed.data;
    const form = input.fromForm !== undefined;
    const policy = system.policy;
    const optional = (value: string | undefined, current: string | undefined) =>
      value === undefined ? current : value.trim() === '' ? undefined : value.trim();
    const checked = ForecastTargetSchema.safeParse({
      hubVersion: input.hubVersion === undefined || input.hubVersion === null || input.hubVersion.trim() === '' ? null : input.hubVersion,
      python: {
        ...(optional(input.pythonMin, policy.python.min) ? { min: optional(input.pythonMin, policy.python.min) } : {}),
        ...(optional(input.pythonMax, policy.python.max) ? { max: optional(input.pythonMax, policy.python.max) } : {}),
      },
      requirePip: input.requirePip === undefined && !form ? policy.requirePip : yes(input.requirePip),
      requireUser: input.requireUser === undefined && !form ? policy.requireUser : yes(input.requireUser),
    });
    if (!checked.success) {
      // Name the form's fields, not the schema's nesting.
      const fields: Record<string, string> = {};
      for (const issue of checked.error.issues) {
        const name =
          issue.path[0] === 'python' ? (issue.path[1] === 'min' ? 'pythonMin' : 'pythonMax') : String(issue.path[0] ?? 'forecast');
        fields[name] ??= issue.message;
      }
      throw invalidInput(fields);
    }
    return checked.data;
  }

  /** Judges every image in use on `slug` (saved there and read by its newest check) and keeps the forecast, unpublished. */
  async create(actor: HubIdentity, slug: string, raw: unknown): Promise<ForecastRow> {
    this.deps.access.forecastUpgrades(actor);
    const system = await this.deps.systems.get(slug);
    if (!system) throw notFound('System');
    const target = await this.targetOf(system, raw);
    const results = await this.judgeSystem(system, target);
    const counts = { fail: 0, warn: 0, pass: 0, unknown: 0 };
    for (const r of results) counts[r.verdict]++;
    const row = { system: slug, target, results, counts, createdBy: actor.name, createdAt: this.now() };
    const id = await this.deps.store.insert(row);
    return { ...row, id, published: null };
  }

  /** The lines of a forecast of `target` on `system`: worst first, then by owner and name. */
  async judgeSystem(system: System, target: ForecastTarget): Promise<ForecastResult[]> {
    const resolved: ForecastTarget = { ...target, hubVersion: target.hubVersion ?? (await this.deps.hubVersion()) ?? null };
    const all = await this.deps.store.imagesOn(system.slug);
    // In use: read by its newest check. One edited (or moved here) since is told so, not judged by another image's inventory.
    const changed: ForecastResult[] = [];
    const images = all.flatMap((image) => {
      const digest = image.check ? checkedDigestOf(image.check) : null;
      if (!image.check || !digest) return [];
      if (image.check.reference !== image.reference || image.check.system !== system.slug) {
        changed.push({
          imageId: image.id,
          owner: image.owner,
          name: image.name,
          reference: image.reference,
          digest: null,
          verdict: 'unknown',
          reasons: ['The image changed since its last check; a check of it is judged at the next forecast.'],
        });
        return [];
      }
      return [{ ...image, check: image.check, digest }];
    });
    const inputs = await this.deps.inventories.ruleInputsMany(images.map((i) => ({ digest: i.digest, platform: i.check.platform })));
    const order: Record<ForecastVerdict, number> = { fail: 0, warn: 1, unknown: 2, pass: 3 };
    return [
      ...images.map((image) => {
        const judged = judge(
          {
            findings: image.check.findings,
            facts: image.check.facts,
            ruleInputs: inputs.get(inventoryKey({ digest: image.digest, platform: image.check.platform })),
          },
          resolved,
          system.policy,
        );
        return {
          imageId: image.id,
          owner: image.owner,
          name: image.name,
          reference: image.reference,
          digest: image.digest,
          verdict: judged.verdict,
          reasons: judged.reasons,
        };
      }),
      ...changed,
    ].sort((a, b) => order[a.verdict] - order[b.verdict] || a.owner.localeCompare(b.owner) || a.name.localeCompare(b.name));
  }

  async get(actor: HubIdentity, id: number): Promise<ForecastRow> {
    this.deps.access.forecastUpgrades(actor);
    const row = await this.deps.store.get(id);
    if (!row) throw notFound('Forecast');
    return row;
  }

  async recent(actor: HubIdentity, slug?: string): Promise<ForecastRow[]> {
    this.deps.access.forecastUpgrades(actor);
    return this.deps.store.recent(slug);
  }

  /** Shows the forecast to the images' owners on their tiles (the newest published one of a system is shown). */
  async publish(actor: HubIdentity, id: number): Promise<ForecastRow> {
    const row = await this.get(actor, id);
    await this.deps.store.publish(id, actor.name, this.now());
    return { ...row, published: { by: actor.name, at: this.now() } };
  }

  /**
   * What the newest published forecast of each system says of `owner`'s
   * images, while each is still at the digest that was judged (the owner's
   * tiles; the caller has checked who asks).
   */
  async notesFor(owner: string, images: ReadonlyArray<{ id: number; system: string }>): Promise<Map<number, ForecastNote>> {
    const notes = new Map<number, ForecastNote>();
    const published = await this.deps.store.publishedFor([...new Set(images.map((i) => i.system))]);
    if (published.size === 0) return notes;
    const checks = await this.deps.checks.latestFor(
      owner,
      images.map((i) => i.id),
    );
    for (const image of images) {
      const forecast = published.get(image.system);
      const line = forecast?.results.find((r) => r.imageId === image.id && r.owner === owner);
      const check = checks.get(image.id);
      if (!forecast || !line || !check || checkedDigestOf(check) !== line.digest) continue;
      notes.set(image.id, { forecastId: forecast.id, verdict: line.verdict, planned: plannedText(forecast.target), reasons: line.reasons });
    }
    return notes;
  }
}

/** "JupyterHub 5.2, Python 3.10–3.12, pip required" */
export function plannedText(target: ForecastTarget): string {
  const parts: string[] = [];
  if (target.hubVersion) parts.push(`JupyterHub ${target.hubVersion}`);
  if (target.python.min || target.python.max) parts.push(`Python ${target.python.min ?? ''}–${target.python.max ?? ''}`);
  if (target.requirePip) parts.push('pip required');
  if (target.requireUser) parts.push('a user with its home required');
  return parts.join(', ') || 'the rules as they are';
}
