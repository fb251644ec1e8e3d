/**
 * zod pieces for what HTML forms and JSON bodies send alike: a form sends
 * "on" for a ticked box and a textarea of lines, JSON sends booleans and
 * arrays. Each feature's input schema builds on these.
 */
import { z } from 'zod';

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
