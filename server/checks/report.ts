/** The JSON shape of a check result, for the CLI and the API. */
import { z } from 'zod';
import type { StaticCheckResult } from './staticCheck.js';

export const FindingSchema = z.object({ code: z.string(), level: z.enum(['error', 'warning', 'info']), message: z.string() });

const CheckReportSchema = z.object({
  reference: z.string(),
  digest: z.string().nullable(),
  platform: z.string(),
  verdict: z.enum(['pass', 'fail', 'error']),
  findings: z.array(FindingSchema),
  singleuser: z.object({ path: z.string(), version: z.string().nullable() }).nullable(),
  python: z.object({ version: z.string().nullable() }).nullable(),
  users: z.array(z.object({ name: z.string(), uid: z.number() })),
});
export type CheckReport = z.infer<typeof CheckReportSchema>;

/** {reference, digest, platform, verdict, findings[], singleuser, python, users[]}. */
export function checkReport(result: StaticCheckResult): CheckReport {
  const facts = result.facts;
  return CheckReportSchema.parse({
    reference: result.reference,
    digest: result.digest ?? null,
    platform: result.platform,
    verdict: result.verdict,
    findings: result.findings,
    singleuser: facts?.singleuser ? { path: facts.singleuser.path, version: facts.singleuser.version ?? null } : null,
    python: facts?.python ? { version: facts.python.version ?? null } : null,
    users: facts?.users ?? [],
  });
}
