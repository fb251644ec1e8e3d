/** Checks as the API answers them (parsed by their schema) and as their page shows them. */
import { z } from 'zod';
import { FindingSchema } from '../../checks/report.js';
import { CHECK_STATUSES, isActive } from '../../checks/status.js';
import type { CheckRow } from '../../checks/store.js';
import { formatDuration } from '../../format.js';

export const CheckResponseSchema = z.object({
  id: z.number().int().positive(),
  imageId: z.number().int().nullable(),
  owner: z.string(),
  system: z.string(),
  image: z.string(),
  digest: z.string().nullable(),
  platform: z.string(),
  kind: z.enum(['static', 'full']),
  status: z.enum(CHECK_STATUSES),
  findings: z.array(FindingSchema),
  reusedFrom: z.number().int().nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  durationMs: z.number().int().nullable(),
  log: z.string(),
});

/** The API's form of a check. */
export function presentCheck(check: CheckRow): z.infer<typeof CheckResponseSchema> {
  return CheckResponseSchema.parse({
    id: check.id,
    imageId: check.imageId,
    owner: check.owner,
    system: check.system,
    image: check.reference,
    digest: check.digest,
    platform: check.platform,
    kind: check.kind,
    status: check.status,
    findings: check.findings,
    reusedFrom: check.reusedFrom,
    createdAt: check.createdAt.toISOString(),
    startedAt: check.startedAt?.toISOString() ?? null,
    finishedAt: check.finishedAt?.toISOString() ?? null,
    durationMs: check.durationMs,
    log: check.log,
  });
}

const VERDICT_TEXT: Record<CheckRow['status'], string> = {
  queued: 'Waiting for a free worker…',
  running: 'Checking…',
  passed: 'This image can run jupyterhub-singleuser',
  failed: 'This image cannot serve as a notebook server',
  error: 'The check could not be made',
};

/** A check as its page shows it: the verdict in words, errors first. */
export function presentCheckPage(check: CheckRow) {
  const order = { error: 0, warning: 1, info: 2 } as const;
  return {
    ...check,
    active: isActive(check.status),
    verdictText: VERDICT_TEXT[check.status],
    findings: [...check.findings].sort((a, b) => order[a.level] - order[b.level]),
    duration: formatDuration(check.durationMs),
    startedAt: (check.startedAt ?? check.createdAt).toISOString(),
  };
}
