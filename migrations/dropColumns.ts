/**
 * Drops columns without copying the table. knex drops a SQLite column by
 * creating a copy of the table and dropping the original, and with foreign
 * keys on (they cannot be switched off inside a migration's transaction:
 * the pragma is ignored there) that drop deletes every row of other tables
 * that refers to it with ON DELETE CASCADE, and empties those with SET NULL.
 * SQLite's own ALTER TABLE … DROP COLUMN (3.35 and later) changes the table
 * in place, inside the transaction; it refuses a column that is a key, is
 * indexed or is part of a constraint, which none of ours that are dropped is.
 */
import type { Knex } from 'knex';

export async function dropColumns(knex: Knex, table: string, ...columns: string[]): Promise<void> {
  if (!String(knex.client.config.client ?? '').includes('sqlite')) {
    await knex.schema.alterTable(table, (t) => {
      t.dropColumns(...columns);
    });
    return;
  }
  for (const column of columns) await knex.raw('ALTER TABLE ?? DROP COLUMN ??', [table, column]);
}
