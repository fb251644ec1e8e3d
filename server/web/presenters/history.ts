/**
 * An image's history as the API answers it (parsed by its schema) and as its
 * page shows it: who did what, when, newest first. Never a secret: the
 * history holds only the plain facts each line names (images/history.ts).
 */
import { z } from 'zod';
import type { HistoryEntry } from '../../images/history.js';
import { REASON_TEXT } from '../../storage/rules.js';

export const HistoryEntryResponseSchema = z.object({
  at: z.string(),
  event: z.enum([
    'created',
    'modified',
    'built',
    'checked',
    'shared',
    'published',
    'unpublished',
    'accepted',
    'rolled back',
    'kept',
    'deleted from the registry',
  ]),
  by: z.string(),
  byKind: z.enum(['user', 'service']),
  changed: z.array(z.string()).optional(),
  build: z.number().int().optional(),
  check: z.number().int().optional(),
  groups: z.array(z.string()).optional(),
  digest: z.string().optional(),
  reason: z.string().optional(),
});

export const HistoryResponseSchema = z.object({ imageId: z.number().int(), entries: z.array(HistoryEntryResponseSchema) });

export function presentHistory(imageId: number, entries: HistoryEntry[]): z.infer<typeof HistoryResponseSchema> {
  return HistoryResponseSchema.parse({ imageId, entries: entries.map((e) => ({ ...e, at: e.at.toISOString() })) });
}

/** What a line says after its verb, in words: which fields, which build, with whom. */
function factsOf(entry: HistoryEntry): string {
  switch (entry.event) {
    case 'modified':
      return entry.changed && entry.changed.length > 0 ? `changed: ${entry.changed.join(', ')}` : 'saved without changes';
    case 'shared':
      return entry.groups && entry.groups.length > 0 ? `with ${entry.groups.join(', ')}` : 'with nobody';
    case 'published':
      return entry.digest ? `as ${entry.digest}` : '';
    case 'deleted from the registry':
      return `by the clean-up: ${REASON_TEXT[entry.reason as keyof typeof REASON_TEXT] ?? 'a run that stopped had begun it'}`;
    default:
      return '';
  }
}

/** Lines for the history page: the same entries, with their facts in words. */
export function presentHistoryPage(entries: HistoryEntry[]) {
  return entries.map((entry) => ({ ...entry, facts: factsOf(entry) }));
}
