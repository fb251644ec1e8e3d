/**
 * A forecast: an image judged again, without a download, against a hub
 * version or policy an admin enters. The rules are the check's own
 * (inspect/rules.ts for Python, JupyterHub and pip; analyze.ts's user rule
 * on the check's stored facts); what those rules do not touch (is
 * jupyterhub-singleuser there at all, …) is taken from the image's newest
 * check. Pure.
 */
import { z } from 'zod';
import { runAsFindings, verdictOf, type Finding, type ImageFacts } from '../inspect/analyze.js';
import { VERSION_RULE_CODES, versionFindings, type RuleInputs } from '../inspect/rules.js';
import type { ImagePolicy } from '../systems/schema.js';

/** What a forecast judges against: a hub version and the rules of a policy an admin may change. */
export const ForecastTargetSchema = z.object({
  /** The hub version planned (`5`, `5.2`, `5.2.1`); null: the hub's version now. */
  hubVersion: z
    .string()
    .trim()
    .regex(/^\d{1,4}(\.\d{1,4}){0,2}$/, 'The hub version is a version such as 5.2.1')
    .nullable(),
  python: z.object({
    min: z
      .string()
      .regex(/^\d+\.\d+$/, 'The lowest Python is a version such as 3.9')
      .optional(),
    max: z
      .string()
      .regex(/^\d+\.\d+$/, 'The highest Python is a version such as 3.12')
      .optional(),
  }),
  requirePip: z.boolean(),
  requireUser: z.boolean(),
});
export type ForecastTarget = z.infer<typeof ForecastTargetSchema>;

/** fail: the image would fail its check; warn: it would pass with a new warning; unknown: no inventory to judge it by. */
export type ForecastVerdict = 'fail' | 'warn' | 'pass' | 'unknown';

/** What an image brings to a forecast: its newest check and the rule inputs of that digest's inventory. */
export interface ForecastCase {
  findings: readonly Finding[];
  facts: ImageFacts | null;
  ruleInputs: RuleInputs | undefined;
}

export interface ForecastJudgement {
  verdict: ForecastVerdict;
  /** Why, in the check's words: the errors and the new warnings. */
  reasons: string[];
  findings: Finding[];
}

/** The user rule's codes (analyze.ts's runAsFindings), replaced when the check's facts are there to apply it again. */
const USER_RULE_CODES: ReadonlySet<string> = new Set(['user.run_as', 'user.uid_missing', 'user.home_not_writable']);

/**
 * Judges one image as a static check with `target` on a system with
 * `policy` (its uid settings as they are) would.
 */
export function judge(image: ForecastCase, target: ForecastTarget, policy: ImagePolicy): ForecastJudgement {
  if (!image.ruleInputs)
    return {
      verdict: 'unknown',
      reasons: ['The image was not read since package inventories are kept; a check of it records one.'],
      findings: [],
    };
  const targetPolicy: ImagePolicy = {
    ...policy,
    python: target.python,
    requirePip: target.requirePip,
    requireUser: target.requireUser,
  };
  const userAgain = image.facts?.runAs !== undefined;
  const kept = image.findings.filter((f) => !VERSION_RULE_CODES.has(f.code) && !(userAgain && USER_RULE_CODES.has(f.code)));
  const again: Finding[] = [
    ...versionFindings(image.ruleInputs, { policy: targetPolicy, hubVersion: target.hubVersion ?? undefined }),
    ...(userAgain && image.facts ? runAsFindings(image.facts, targetPolicy) : []),
  ];
  const findings = [...kept, ...again];
  const failed = verdictOf(findings) === 'fail';
  const warned = again.some((f) => f.level === 'warning');
  const reasons = [...findings.filter((f) => f.level === 'error'), ...(failed ? [] : again.filter((f) => f.level === 'warning'))].map(
    (f) => f.message,
  );
  return { verdict: failed ? 'fail' : warned ? 'warn' : 'pass', reasons, findings };
}
