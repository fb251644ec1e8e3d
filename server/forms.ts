/**
 * zod pieces for what HTML forms and JSON bodies send alike: a form sends
 * "on" for a ticked box and a textarea of lines, JSON sends booleans and
 * arrays. Each feature's input schema builds on these.
 */
import { z } from 'zod';
import { invalidInput, type AppError } from './errors.js';

/** The first message for each input field of a refused input; `fallback` names a problem of the whole input. */
export function firstMessages(error: z.ZodError, fallback: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of error.issues) fields[String(issue.path[0] ?? fallback)] ??= issue.message;
  return fields;
}

/** A refused input as a 400 naming each field with its first message. */
export function inputError(error: z.ZodError, fallback: string): AppError {
  return invalidInput(firstMessages(error, fallback));
}

/** A checkbox: true, "on", "true" or "1"; anything else, or nothing, is false. */
export const checkbox = z
  .union([z.boolean(), z.enum(['on', 'true', '1', 'false', '0', ''])])
  .optional()
  .transform((v) => v === true || v === 'on' || v === 'true' || v === '1');

/** A list: an array, or a textarea's lines (or commas); blank entries dropped. */
export const lines = z
  .union([z.array(z.string()), z.string()])
  .default([])
  .transform((v) => (Array.isArray(v) ? v : v.split(/[\n,]/)).map((s) => s.trim()).filter(Boolean));
