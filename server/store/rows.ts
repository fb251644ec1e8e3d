/** Column conversions shared by the stores: SQLite and PostgreSQL hand back dates and JSON differently. */

/** A timestamp column: a Date from pg, a number or an ISO string from SQLite. */
export function toDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(typeof value === 'number' ? value : String(value));
}

/** A nullable timestamp column. */
export function toDateOrNull(value: unknown): Date | null {
  return value === null || value === undefined ? null : toDate(value);
}

/** A JSON column: parsed by pg, a string from SQLite. */
export function fromJson<T>(value: unknown): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}
