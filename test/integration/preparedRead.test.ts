/**
 * The launch's prepared read on every engine: rows come as arrays in the
 * select's order, and each read sees what was committed before it, also on
 * SQLite, where it reads through a connection of its own.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { preparedRead, type Knex } from '../../server/store/db.js';
import { testDatabase } from '../support/database.js';

type Kind = Parameters<typeof testDatabase>[0];

async function database(kind: Kind): Promise<Knex> {
  const db = await testDatabase(kind);
  await db.schema.createTable('things', (t) => {
    t.integer('id').primary();
    t.string('name');
    t.string('colour');
  });
  return db;
}

describe.each<Kind>(['SQLite', 'SQLite in memory', 'PostgreSQL'])('preparedRead on %s', (kind) => {
  it('answers rows as arrays in the order selected, and sees every write committed before each read', async () => {
    const db = await database(kind);
    await db('things').insert({ id: 1, name: 'one', colour: 'red' });
    const read = preparedRead(db, 'select colour as c, id as i, name as n from things where id >= ? order by id');
    onTestFinished(() => read.close());
    expect(await read.all([1])).toEqual([['red', 1, 'one']]);

    await db('things').insert({ id: 2, name: 'two', colour: null });
    await db('things').where({ id: 1 }).update({ colour: 'blue' });
    expect(await read.all([1])).toEqual([
      ['blue', 1, 'one'],
      [null, 2, 'two'],
    ]);
    expect(await read.all([3])).toEqual([]);

    // A write still inside its transaction is not seen; once committed, it is.
    if (kind !== 'SQLite in memory') {
      await db.transaction(async (trx) => {
        await trx('things').insert({ id: 3, name: 'three', colour: 'green' });
        expect(await read.all([3])).toEqual([]);
      });
      expect(await read.all([3])).toEqual([['green', 3, 'three']]);
    }

    // Closed (the app's shutdown), it opens again when asked.
    read.close();
    expect((await read.all([2]))[0]).toEqual([null, 2, 'two']);
  });
});
