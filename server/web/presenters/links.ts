/**
 * Launch links as the API answers them (parsed by their schemas) and as the
 * plan and progress pages show them; the badge a repository's README shows.
 */
import { z } from 'zod';
import { LAUNCH_STEPS, type LaunchView } from '../../links/launch.js';
import type { LinkPlan } from '../../links/service.js';
import { linkPath, type LaunchLink } from '../../links/link.js';

export const LinkPlanResponseSchema = z.object({
  repo: z.string(),
  ref: z.string(),
  commit: z.string(),
  system: z.object({ slug: z.string(), displayName: z.string() }),
  urlpath: z.string(),
  /** "start": the commit is built (or being built) in the visitor's image; "build": it will be built first. */
  action: z.enum(['start', 'build']),
  image: z.object({ id: z.number().int(), name: z.string(), build: z.number().int(), building: z.boolean() }).nullable(),
  /** With "build": the visitor's image the build goes into (built from this repository before), or null for a new one. */
  rebuilds: z.object({ id: z.number().int(), name: z.string() }).nullable(),
  estimateMinutes: z.number().int().nullable(),
  /** The visitor's server now: a running one must be stopped first (`stopRunning: true`). */
  server: z.enum(['none', 'pending', 'ready']),
  landing: z.string(),
});

export const LaunchResponseSchema = z.object({
  step: z.enum(LAUNCH_STEPS),
  message: z.string().nullable(),
  repo: z.string(),
  commit: z.string(),
  system: z.string(),
  image: z.object({ id: z.number().int(), name: z.string() }),
  /** The build the launch waits for; null when the commit was built already. */
  build: z.number().int().nullable(),
  landing: z.string(),
  startedAt: z.string(),
});

export function presentPlan(plan: LinkPlan): z.infer<typeof LinkPlanResponseSchema> {
  return LinkPlanResponseSchema.parse({
    repo: plan.link.repo,
    ref: plan.link.ref,
    commit: plan.commit,
    system: plan.system,
    urlpath: plan.link.urlpath,
    action: plan.image ? 'start' : 'build',
    image: plan.image ? { id: plan.image.id, name: plan.image.name, build: plan.image.buildNumber, building: plan.image.building } : null,
    rebuilds: plan.image ? null : plan.rebuilds,
    estimateMinutes: plan.estimateMinutes,
    server: plan.server,
    landing: plan.landing,
  });
}

export function presentLaunch(launch: LaunchView): z.infer<typeof LaunchResponseSchema> {
  return LaunchResponseSchema.parse({
    step: launch.step,
    message: launch.message,
    repo: launch.repo,
    commit: launch.commit,
    system: launch.system,
    image: { id: launch.imageId, name: launch.imageName },
    build: launch.buildNumber,
    landing: launch.landing,
    startedAt: launch.startedAt.toISOString(),
  });
}

/** What each step is called on the progress page. */
export const STEP_LABELS: Record<LaunchView['step'], string> = {
  building: 'Building the image',
  checking: 'Checking the image',
  stopping: 'Stopping your running server',
  starting: 'Starting your server',
  ready: 'Your server is ready',
  failed: 'Opening the link failed',
};

/** The link to a repository and its badge, as Markdown and HTML to paste into a README. */
export function presentShareLink(origin: string, prefix: string, link: LaunchLink): { url: string; markdown: string; html: string } {
  const url = `${origin}${prefix}${linkPath(link)}`;
  const badge = `${origin}${prefix}badge.svg`;
  return {
    url,
    markdown: `[![Open in the hub](${badge})](${url})`,
    html: `<a href="${escapeHtml(url)}"><img src="${escapeHtml(badge)}" alt="Open in the hub"></a>`,
  };
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The badge: a small fixed SVG (no input of anyone's in it). */
export const BADGE_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="128" height="20" role="img" aria-label="open in the hub">
<title>open in the hub</title>
<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>
<clipPath id="r"><rect width="128" height="20" rx="3" fill="#fff"/></clipPath>
<g clip-path="url(#r)"><rect width="40" height="20" fill="#555"/><rect x="40" width="88" height="20" fill="#e66000"/><rect width="128" height="20" fill="url(#s)"/></g>
<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">
<text x="20" y="14">open</text><text x="84" y="14">in the hub</text></g>
</svg>
`;
