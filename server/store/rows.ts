/** Column conversions shared by the stores: SQLite and PostgreSQL hand back dates and JSON differently. */
import type { Sealed } from '../secrets/keyring.js';

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

/** A sealed secret as stored: ciphertext, nonce and the sealing key's id. */
export interface SealedColumns {
  ciphertext: Buffer;
  nonce: Buffer;
  key_id: string;
}

/** Sealed values to their columns. */
export function sealedToColumns(sealed: Sealed): SealedColumns {
  return { ciphertext: Buffer.from(sealed.ciphertext), nonce: Buffer.from(sealed.nonce), key_id: sealed.keyId };
}

/** Sealed columns of a row back to the values the keyring opens. */
export function sealedFromRow(r: Record<string, unknown>, prefix = ''): Sealed {
  return {
    ciphertext: new Uint8Array(r[`${prefix}ciphertext`] as Buffer),
    nonce: new Uint8Array(r[`${prefix}nonce`] as Buffer),
    keyId: String(r[`${prefix}key_id`]),
  };
}
