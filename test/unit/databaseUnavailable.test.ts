import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../server/store/db.js';

function error(fields: Record<string, unknown>): Error {
  return Object.assign(new Error(String(fields.message ?? 'x')), fields);
}

describe('isDatabaseUnavailable', () => {
  it.each([
    ['a refused connection', error({ code: 'ECONNREFUSED' })],
    ['a server shutting down (57P01)', error({ code: '57P01', message: 'terminating connection due to administrator command' })],
    ['a server starting up (57P03)', error({ code: '57P03' })],
    ['a connection exception (08006)', error({ code: '08006' })],
    ['too many connections (53300)', error({ code: '53300' })],
    ['no free connection in time', error({ name: 'KnexTimeoutError', message: 'Knex: Timeout acquiring a connection.' })],
    ['a dropped connection', new Error('Connection terminated unexpectedly')],
    ['a busy SQLite file', error({ code: 'SQLITE_BUSY' })],
    ['any of these as a cause', new Error('query failed', { cause: error({ code: 'ECONNRESET' }) })],
  ])('is true for %s', (_what, err) => {
    expect(isDatabaseUnavailable(err)).toBe(true);
  });

  it.each([
    ['a syntax error (42601)', error({ code: '42601' })],
    ['a unique violation (23505)', error({ code: '23505' })],
    ['a SQLite constraint', error({ code: 'SQLITE_CONSTRAINT_UNIQUE' })],
    ['a plain error', new Error('boom')],
    ['not an error at all', 'boom'],
    ['nothing', undefined],
  ])('is false for %s: that is our fault, not an outage', (_what, err) => {
    expect(isDatabaseUnavailable(err)).toBe(false);
  });
});
