/**
 * Every migration, in order. A migration is never edited after it ships:
 * add a new one instead.
 */
import type { Knex } from 'knex';
import * as m001 from './20261123_001_sessions.js';

export interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

export const migrations: Migration[] = [{ name: '20261123_001_sessions', ...m001 }];
