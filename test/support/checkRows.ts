/**
 * A check row as the API queues one (static, for the default system and an
 * open policy), for tests and benches that write checks straight to the store.
 */
import type { CheckStore } from '../../server/checks/store.js';
import { policyHash } from '../../server/systems/policy.js';
import { OPEN_POLICY } from '../../server/systems/schema.js';

export type NewCheckRow = Parameters<CheckStore['insert']>[0];

export function checkRow(overrides: Partial<NewCheckRow> = {}): NewCheckRow {
  return {
    imageId: null,
    owner: 'ada',
    system: 'default',
    reference: 'registry.example.org/lab/env:1',
    digest: null,
    manifestDigest: null,
    platform: 'linux/amd64',
    policyHash: policyHash(OPEN_POLICY, 'linux/amd64'),
    kind: 'static',
    status: 'queued',
    findings: [],
    facts: null,
    log: '',
    progress: null,
    reusedFrom: null,
    createdAt: new Date(),
    startedAt: null,
    finishedAt: null,
    durationMs: null,
    ...overrides,
  };
}
