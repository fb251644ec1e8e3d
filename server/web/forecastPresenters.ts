/** Forecasts as the admin API answers them and the admin page and tiles show them. */
import { z } from 'zod';
import { ForecastTargetSchema, type ForecastVerdict } from '../inventory/forecast.js';
import { plannedText, type ForecastNote } from '../inventory/forecastService.js';
import type { ForecastRow } from '../inventory/forecastStore.js';

const VERDICTS = ['fail', 'warn', 'pass', 'unknown'] as const;

/** `POST api/v1/systems/{slug}/forecasts`, `GET api/v1/forecasts/{id}`. */
export const ForecastResponseSchema = z.object({
  id: z.number().int().positive(),
  system: z.string(),
  target: ForecastTargetSchema,
  /** "JupyterHub 5.2, pip required" */
  planned: z.string(),
  /** "2 would fail, 1 would warn" */
  summary: z.string(),
  counts: z.object({ fail: z.number().int(), warn: z.number().int(), pass: z.number().int(), unknown: z.number().int() }),
  results: z.array(
    z.object({
      imageId: z.number().int().positive(),
      owner: z.string(),
      name: z.string(),
      reference: z.string(),
      digest: z.string().nullable(),
      verdict: z.enum(VERDICTS),
      reasons: z.array(z.string()),
    }),
  ),
  createdBy: z.string(),
  createdAt: z.string(),
  published: z.object({ by: z.string(), at: z.string() }).nullable(),
});
export type ForecastResponse = z.infer<typeof ForecastResponseSchema>;

/** "2 would fail, 1 would warn" (and how many could not be judged). */
export function forecastSummary(counts: Record<ForecastVerdict, number>): string {
  const parts = [`${counts.fail} would fail`, `${counts.warn} would warn`];
  if (counts.unknown > 0) parts.push(`${counts.unknown} not judged (no inventory yet)`);
  return parts.join(', ');
}

export function presentForecast(row: ForecastRow): ForecastResponse {
  return ForecastResponseSchema.parse({
    ...row,
    planned: plannedText(row.target),
    summary: forecastSummary(row.counts),
    createdAt: row.createdAt.toISOString(),
    published: row.published ? { by: row.published.by, at: row.published.at.toISOString() } : null,
  });
}

const NOTE_WORDS: Record<ForecastVerdict, string> = {
  fail: 'would fail its check',
  warn: 'would pass with a warning',
  pass: 'would pass',
  unknown: 'could not be judged yet',
};

/** A tile's line: "With JupyterHub 5.2 (planned by the admins) this image would fail its check: …". */
export function presentForecastNote(note: ForecastNote) {
  return {
    verdict: note.verdict,
    text: `With ${note.planned} (planned by the admins) this image ${NOTE_WORDS[note.verdict]}`,
    reasons: note.reasons,
  };
}
