/**
 * Systems for hub admins: where custom images are offered and under which
 * rules, and registry credentials for a registry pattern. Until an admin
 * defines a system, the one default system from configuration is offered.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { auditEntry, changedFields } from '../audit/store.js';
import { conflict, invalidInput, notFound } from '../errors.js';
import type { AccessRules } from '../hub/access.js';
import type { HubIdentity } from '../hub/identity.js';
import { aptSourceProblem, mirrorUrlProblem } from './mirrors.js';
import { checkMountPath } from './mountPath.js';
import { hostProblem, parseReference, stripScheme, type ImageReference } from '../registry/reference.js';
import { resealWithCurrentKey, type Keyring, type RotationResult } from '../secrets/keyring.js';
import { checkbox, inputError, lines } from '../forms.js';
import { builtImageProblem, parsePushPath, PUSH_PATH_MAX_LENGTH, underPushPath, type PushPath } from './pushPath.js';
import {
  BUILD_NETWORKS,
  BUILDS_NEED_PROCESS_LIMIT,
  DEFAULT_GID,
  DEFAULT_KEPT_REVISIONS,
  DEFAULT_UID,
  MAX_KEPT_REVISIONS,
  registryAllowed,
  SLUG,
  SLUG_RULE,
  SystemSchema,
  type System,
  type SystemCatalog,
} from './schema.js';
import type { RegistryCredentialRow, SystemStore } from './store.js';
import { StorageInputShape, storageFromInput, type StorageSettings } from './storage.js';

/** A registry pattern: `*`, `host/*`, `host/path/*`, or an exact `host/repository`. */
function patternProblem(pattern: string): string | undefined {
  if (pattern === '*') return undefined;
  const host = pattern.split('/')[0] ?? '';
  const problem = hostProblem(host);
  if (problem || !/^[a-z0-9.:[\]-]+(\/[a-z0-9._-]+)*(\/\*)?$/.test(pattern)) {
    return `"${pattern}" is not a registry pattern: write * or host/* or host/path/*, e.g. registry.example.com/team/*`;
  }
  return undefined;
}

/** A whole number from a form field or JSON; blank is `undefined`. */
const optionalId = (message: string) =>
  z
    .union([z.number(), z.string().trim()])
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
      if (!Number.isInteger(n) || n < 1 || n > 2_147_483_646) {
        ctx.addIssue({ code: 'custom', message });
        return z.NEVER;
      }
      return n;
    });

/** One schema for the admin form and the API. */
export const SystemInputSchema = z
  .object({
    slug: z.string().trim().regex(SLUG, `The slug has ${SLUG_RULE}, e.g. JSC-Cloud`),
    displayName: z.string().trim().min(1, 'Enter a display name').max(100, 'The display name has at most 100 characters'),
    description: z.string().trim().max(1000, 'The description has at most 1000 characters').default(''),
    enabled: checkbox,
    allowedRegistries: lines.refine((l) => l.length > 0, 'List at least one registry pattern, e.g. docker.io/*'),
    mountPrefixes: lines,
    defaultMountPath: z.string().trim().min(1, 'Enter the default mount path, e.g. /home/jovyan/work'),
    platform: z
      .string()
      .trim()
      .regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, 'The platform is os/arch[/variant], e.g. linux/amd64')
      .default('linux/amd64'),
    spawner: z.enum(['docker', 'kubernetes'], { message: 'The spawner is docker or kubernetes' }).default('docker'),
    runCheck: checkbox,
    uid: optionalId('The uid is a whole number from 1 (0 is root, never allowed), e.g. 1000'),
    uidMax: optionalId('The highest uid is a whole number from 1, or blank for exactly one uid'),
    gid: optionalId('The gid is a whole number from 1 (0 is the root group, never allowed), e.g. 100'),
    requireUser: checkbox,
    /** The name requireUser had before the uid was a setting; seed files and API clients may still send it. */
    requireUid1000: checkbox,
    requirePip: checkbox,
    pythonMin: z
      .string()
      .trim()
      .regex(/^(\d+\.\d+)?$/, 'A Python version is major.minor, e.g. 3.9')
      .default(''),
    pythonMax: z
      .string()
      .trim()
      .regex(/^(\d+\.\d+)?$/, 'A Python version is major.minor, e.g. 3.12')
      .default(''),
    buildEnabled: checkbox,
    /** As pasted (a scheme, a trailing slash) to registry/path. */
    buildPushTo: z
      .string()
      .trim()
      .max(400, 'The push path has at most 400 characters')
      .default('')
      .transform((v) => stripScheme(v).replace(/\/+$/, '')),
    buildNetwork: z.enum(BUILD_NETWORKS, { message: 'The build network is default, none or host' }).default('default'),
    /** "Name = image" or "image", one a line. */
    buildBaseImages: lines,
    /** host[:port], one a line; none: any host. */
    buildGitHosts: lines,
    /** The site's package mirrors (systems/mirrors.ts): repository builds use them. */
    buildPipIndexUrl: z.string().trim().max(2048, 'The pip index URL has at most 2048 characters').default(''),
    buildPipExtraIndexUrl: z.string().trim().max(2048, 'The extra pip index URL has at most 2048 characters').default(''),
    buildCondaChannels: lines,
    buildAptSources: lines,
    ...StorageInputShape,
    /** Blank: the default (revisions/schema.ts). */
    keptRevisions: z
      .union([z.number(), z.string().trim()])
      .optional()
      .transform((v, ctx) => {
        if (v === undefined || v === '') return undefined;
        const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
        if (!Number.isInteger(n) || n < 1 || n > MAX_KEPT_REVISIONS) {
          ctx.addIssue({
            code: 'custom',
            message: `Revisions kept per image: a whole number from 1 to ${MAX_KEPT_REVISIONS}, or blank for ${DEFAULT_KEPT_REVISIONS}`,
          });
          return z.NEVER;
        }
        return n;
      }),
  })
  .superRefine((input, ctx) => {
    for (const pattern of input.allowedRegistries) {
      const problem = patternProblem(pattern);
      if (problem) ctx.addIssue({ code: 'custom', path: ['allowedRegistries'], message: problem });
    }
    for (const prefix of input.mountPrefixes) {
      const checked = checkMountPath(prefix, []);
      if (!checked.ok) ctx.addIssue({ code: 'custom', path: ['mountPrefixes'], message: `${prefix}: ${checked.message}` });
    }
    const mount = checkMountPath(input.defaultMountPath, input.mountPrefixes);
    if (!mount.ok) ctx.addIssue({ code: 'custom', path: ['defaultMountPath'], message: mount.message });
    const pushProblem = buildPushProblem(input.buildPushTo, input.buildEnabled, input.allowedRegistries);
    if (pushProblem) ctx.addIssue({ code: 'custom', path: ['buildPushTo'], message: pushProblem });
    const pushPath = pushProblem ? undefined : parsePushPath(input.buildPushTo);
    for (const line of input.buildBaseImages) {
      const image = baseImageLine(line).image;
      const problem = referenceProblem(image) ?? (pushPath ? underOwnPushPath(image, pushPath) : undefined);
      if (problem) ctx.addIssue({ code: 'custom', path: ['buildBaseImages'], message: `${line}: ${problem}` });
    }
    const mirrorFields = [
      ...[input.buildPipIndexUrl, input.buildPipExtraIndexUrl].filter(Boolean).map((url, i) => ({
        field: i === 0 && input.buildPipIndexUrl ? 'buildPipIndexUrl' : 'buildPipExtraIndexUrl',
        problem: mirrorUrlProblem(url),
      })),
      ...input.buildCondaChannels.map((url) => ({ field: 'buildCondaChannels', problem: mirrorUrlProblem(url) })),
      ...input.buildAptSources.map((line) => ({ field: 'buildAptSources', problem: aptSourceProblem(line) })),
    ];
    for (const { field, problem } of mirrorFields) if (problem) ctx.addIssue({ code: 'custom', path: [field], message: problem });
    const mirrorSet = mirrorFields[0]?.field;
    if (mirrorSet && input.buildNetwork === 'none')
      ctx.addIssue({
        code: 'custom',
        path: [mirrorSet],
        message:
          'Builds on this system have no network (none), so they cannot reach a mirror: choose the host or default build network, or leave the mirrors blank',
      });
    if (input.uidMax !== undefined && input.uidMax < (input.uid ?? DEFAULT_UID)) {
      ctx.addIssue({
        code: 'custom',
        path: ['uidMax'],
        message: `The highest uid must be at least the uid (${input.uid ?? DEFAULT_UID}), or blank for exactly one uid`,
      });
    }
  })
  .transform((input): System =>
    SystemSchema.parse({
      slug: input.slug,
      displayName: input.displayName,
      description: input.description,
      enabled: input.enabled,
      allowedRegistries: input.allowedRegistries,
      mountPrefixes: input.mountPrefixes.map((p) => (checkMountPath(p, []) as { path: string }).path),
      defaultMountPath: (checkMountPath(input.defaultMountPath, []) as { path: string }).path,
      platform: input.platform,
      spawner: input.spawner,
      policy: {
        runCheck: input.runCheck,
        uid: input.uid ?? DEFAULT_UID,
        ...(input.uidMax !== undefined && input.uidMax !== (input.uid ?? DEFAULT_UID) ? { uidMax: input.uidMax } : {}),
        gid: input.gid ?? DEFAULT_GID,
        requireUser: input.requireUser || input.requireUid1000,
        requirePip: input.requirePip,
        python: { ...(input.pythonMin ? { min: input.pythonMin } : {}), ...(input.pythonMax ? { max: input.pythonMax } : {}) },
      },
      build: {
        enabled: input.buildEnabled,
        pushTo: input.buildPushTo,
        network: input.buildNetwork,
        baseImages: input.buildBaseImages.map(baseImageLine),
        ...(input.buildGitHosts.length > 0 ? { gitHosts: input.buildGitHosts.map((h) => h.toLowerCase()) } : {}),
        ...(mirrorsOf(input) ? { mirrors: mirrorsOf(input) } : {}),
      },
      storage: storageFromInput(input),
      ...(input.keptRevisions === undefined ? {} : { keptRevisions: input.keptRevisions }),
    }),
  );

/** The storage settings alone (`PUT api/v1/systems/{slug}/storage`): the same fields as the admin form. */
export const StorageInputSchema = z.strictObject(StorageInputShape).transform(storageFromInput);

/** The mirrors the form names, or undefined for none. */
function mirrorsOf(input: {
  buildPipIndexUrl: string;
  buildPipExtraIndexUrl: string;
  buildCondaChannels: string[];
  buildAptSources: string[];
}): NonNullable<System['build']['mirrors']> | undefined {
  const mirrors = {
    ...(input.buildPipIndexUrl ? { pipIndexUrl: input.buildPipIndexUrl } : {}),
    ...(input.buildPipExtraIndexUrl ? { pipExtraIndexUrl: input.buildPipExtraIndexUrl } : {}),
    ...(input.buildCondaChannels.length ? { condaChannels: input.buildCondaChannels } : {}),
    ...(input.buildAptSources.length ? { aptSources: input.buildAptSources } : {}),
  };
  return Object.keys(mirrors).length > 0 ? mirrors : undefined;
}

/** A base image line of the admin form: "Name = image", or the image alone (its own name). */
function baseImageLine(line: string): { name: string; image: string } {
  const at = line.indexOf('=');
  if (at < 0) return { name: line.trim(), image: line.trim() };
  const name = line.slice(0, at).trim();
  const image = line.slice(at + 1).trim();
  return { name: name || image, image };
}

/** A base image under the push path would be some user's build, which that user can overwrite. */
function underOwnPushPath(image: string, pushPath: PushPath): string | undefined {
  if (!underPushPath(parseReference(image), [pushPath])) return undefined;
  return `base images are not kept under the push path ${pushPath.path}, where users' builds go (a user could overwrite it): push it elsewhere`;
}

function referenceProblem(image: string): string | undefined {
  try {
    parseReference(image);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * Where built images go: a registry path the system itself offers images
 * from, so that a built image is checked and launched under the same rules.
 */
function buildPushProblem(path: string, enabled: boolean, allowedRegistries: readonly string[]): string | undefined {
  if (path === '')
    return enabled ? 'Enter the registry path built images are pushed to, e.g. registry.example.org/custom-images' : undefined;
  // Room for the user's part and the image's name within the 255 characters of an image name.
  if (path.length > PUSH_PATH_MAX_LENGTH) return `The push path has at most ${PUSH_PATH_MAX_LENGTH} characters`;
  let reference: ImageReference;
  try {
    reference = parseReference(`${path}/user/image:1`);
  } catch (err) {
    return `"${path}" is not a registry path such as registry.example.org/custom-images (${err instanceof Error ? err.message : String(err)})`;
  }
  if (!path.startsWith(`${reference.registry}/`))
    return `"${path}" must start with the registry's host, e.g. registry.example.org/custom-images`;
  if (!registryAllowed(allowedRegistries, reference.registry, reference.repository)) {
    return `Built images are pushed to ${path}, which the allowed registries must include (add ${path}/*)`;
  }
  return undefined;
}

const RegistryCredentialInputSchema = z.object({
  pattern: z
    .string()
    .trim()
    .superRefine((p, ctx) => {
      const problem = p === '*' ? 'A credential needs a registry, not *: e.g. registry.example.com/*' : patternProblem(p);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  username: z.string().trim().min(1, 'Enter the username').max(255),
  password: z.string().min(1, 'Enter the password or token').max(4096),
});

/** The associated data of an admin credential. */
function adminCredentialAd(id: string, pattern: string): string {
  return `custom-images/registry-credential/v1/${id}/${pattern}`;
}

export interface SystemServiceDeps {
  store: SystemStore;
  keyring: Keyring;
  /** Who may see disabled systems and manage them; commands without callers (seed, rotate-keys) need none. */
  access?: AccessRules;
  /** Offered while no admin defined a system (commands such as rotate-keys need none). */
  defaultSystem?: System | undefined;
  /**
   * The users whose builds were pushed to a repository (`registry/repository`):
   * those it belongs to (builds/store.ts). Without it, a path's component alone decides.
   */
  pushedBy?: (repository: string) => Promise<string[]>;
  /**
   * Whether build steps have a limit on processes (the host admin's cgroup
   * parent, CUSTOM_IMAGES_BUILD_CGROUP_PARENT): without one, no system may
   * have building turned on.
   */
  buildProcessLimit?: boolean;
  now?: () => Date;
}

export class SystemService implements SystemCatalog {
  private readonly now: () => Date;

  constructor(private readonly deps: SystemServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  async listEnabled(): Promise<System[]> {
    const all = await this.deps.store.list();
    if (all.length === 0) return this.deps.defaultSystem ? [this.deps.defaultSystem] : [];
    return all.filter((s) => s.enabled);
  }

  async get(slug: string): Promise<System | undefined> {
    const stored = await this.deps.store.get(slug);
    if (stored) return stored;
    const fallback = this.deps.defaultSystem;
    if (fallback && slug === fallback.slug && (await this.deps.store.count()) === 0) return fallback;
    return undefined;
  }

  /**
   * The systems `actor` may see: all of them, disabled ones too, for admins
   * (once any is defined); the enabled ones for everyone else.
   */
  async listFor(actor: HubIdentity): Promise<System[]> {
    this.rules().useService(actor);
    if (this.rules().isAdmin(actor)) {
      const all = await this.deps.store.list();
      if (all.length > 0) return all;
    }
    return this.listEnabled();
  }

  /** Refuses anyone but admins: before an admin page that reads nothing (a new system's form). */
  ensureAdmin(actor: HubIdentity): void {
    this.rules().manageSystems(actor);
  }

  /** Every system an admin defined, disabled ones too. */
  listAll(actor: HubIdentity): Promise<System[]> {
    this.rules().manageSystems(actor);
    return this.deps.store.list();
  }

  /** A system an admin defined, to edit; 404 for the configured default and unknown slugs. */
  async getForEdit(actor: HubIdentity, slug: string): Promise<System> {
    this.rules().manageSystems(actor);
    const system = await this.deps.store.get(slug);
    if (!system) throw notFound('System');
    return system;
  }

  async create(actor: HubIdentity, raw: unknown): Promise<System> {
    this.rules().manageSystems(actor);
    const parsed = SystemInputSchema.safeParse(raw);
    if (!parsed.success) throw inputError(parsed.error, 'slug');
    const system = parsed.data;
    this.assertBuildable(system);
    if (await this.deps.store.get(system.slug)) {
      throw conflict(`A system with the slug ${system.slug} exists already`, { field: 'slug' });
    }
    await this.deps.store.transaction(async (store) => {
      await store.insert(system, this.now());
      await store.audit(auditEntry(actor, 'system.create', { type: 'system', id: system.slug }, { ...system }), this.now());
    });
    return system;
  }

  async update(actor: HubIdentity, slug: string, raw: unknown): Promise<System> {
    this.rules().manageSystems(actor);
    const existing = await this.deps.store.get(slug);
    if (!existing) throw notFound('System');
    const parsed = SystemInputSchema.safeParse({ ...(raw as object), slug });
    if (!parsed.success) throw inputError(parsed.error, 'slug');
    const system = parsed.data;
    this.assertBuildable(system);
    await this.deps.store.transaction(async (store) => {
      await store.update(system, this.now());
      await store.audit(
        auditEntry(
          actor,
          'system.update',
          { type: 'system', id: slug },
          { before: existing, after: system, changed: changedFields(existing, system) },
        ),
        this.now(),
      );
    });
    return system;
  }

  /** Changes a system's quotas and retention only (systems/storage.ts); the rest stays as it is. */
  async updateStorage(actor: HubIdentity, slug: string, raw: unknown): Promise<StorageSettings> {
    this.rules().manageSystems(actor);
    const existing = await this.deps.store.get(slug);
    if (!existing) throw notFound('System');
    const parsed = StorageInputSchema.safeParse(raw ?? {});
    if (!parsed.success) throw inputError(parsed.error, 'storage');
    const system = { ...existing, storage: parsed.data };
    await this.deps.store.transaction(async (store) => {
      await store.update(system, this.now());
      await store.audit(
        auditEntry(actor, 'system.update', { type: 'system', id: slug }, { before: existing.storage ?? null, after: parsed.data }),
        this.now(),
      );
    });
    return parsed.data;
  }

  /** Creates the systems of a seed file that do not exist yet; admin edits are never overwritten. */
  async seed(systems: unknown[]): Promise<string[]> {
    const created: string[] = [];
    for (const raw of systems) {
      const parsed = SystemInputSchema.safeParse(raw);
      if (!parsed.success) throw new Error(`a seeded system is invalid: ${inputError(parsed.error, 'slug').message}`);
      if (parsed.data.build.enabled && !this.deps.buildProcessLimit)
        throw new Error(`the seeded system ${parsed.data.slug} has buildEnabled: ${BUILDS_NEED_PROCESS_LIMIT}`);
      if (await this.deps.store.get(parsed.data.slug)) continue;
      await this.deps.store.insert(parsed.data, this.now());
      created.push(parsed.data.slug);
    }
    return created;
  }

  async listCredentials(
    actor: HubIdentity,
  ): Promise<Array<{ id: string; pattern: string; username: string; updatedBy: string; updatedAt: Date }>> {
    this.rules().manageSystems(actor);
    return (await this.deps.store.credentials()).map(({ id, pattern, username, updatedBy, updatedAt }) => ({
      id,
      pattern,
      username,
      updatedBy,
      updatedAt,
    }));
  }

  async putCredential(actor: HubIdentity, raw: unknown): Promise<void> {
    this.rules().manageSystems(actor);
    const parsed = RegistryCredentialInputSchema.safeParse(raw);
    if (!parsed.success) throw inputError(parsed.error, 'slug');
    const { pattern, username, password } = parsed.data;
    const id = randomUUID();
    const sealed = this.deps.keyring.seal(password, adminCredentialAd(id, pattern));
    await this.deps.store.transaction(async (store) => {
      await store.putCredential({ id, pattern, username, updatedBy: actor.name, ...sealed }, this.now());
      await store.audit(
        auditEntry(actor, 'registry_credential.put', { type: 'registry_credential', id: pattern }, { pattern, username }),
        this.now(),
      );
    });
  }

  async deleteCredential(actor: HubIdentity, id: string): Promise<void> {
    this.rules().manageSystems(actor);
    const existing = (await this.deps.store.credentials()).find((c) => c.id === id);
    if (!existing) throw notFound('Credential');
    await this.deps.store.transaction(async (store) => {
      await store.deleteCredential(id);
      await store.audit(
        auditEntry(
          actor,
          'registry_credential.delete',
          { type: 'registry_credential', id: existing.pattern },
          { pattern: existing.pattern, username: existing.username },
        ),
        this.now(),
      );
    });
  }

  /**
   * The admin credential whose pattern matches the image most specifically,
   * opened, for a pull or push of `user`'s image; undefined if none, and
   * for another user's built image (see {@link builtImageProblem}): the
   * credential of a push path reads every user's builds. `candidates`: the
   * rows to choose from when the caller has read them already (a launch
   * reads them with the image).
   */
  async credentialFor(
    reference: ImageReference,
    user: string,
    candidates?: readonly RegistryCredentialRow[],
  ): Promise<{ username: string; password: string } | undefined> {
    const matching = (candidates ?? (await this.deps.store.credentials()))
      .filter((c) => registryAllowed([c.pattern], reference.registry, reference.repository))
      .sort((a, b) => b.pattern.length - a.pattern.length);
    const best = matching[0];
    if (!best) return undefined;
    if (await this.builtImageProblem(reference, user)) return undefined;
    return { username: best.username, password: this.deps.keyring.open(best, adminCredentialAd(best.id, best.pattern)) };
  }

  /**
   * Why `user` may not use `reference` as an image of their own: it lies
   * under a system's push path and is not their build (another user's, or a
   * path no build makes). Undefined when it is theirs or under no push path.
   * Checked wherever a user's image is saved, built from, checked, pulled or
   * launched; receivers of a share launch the owner's image, as its owner's.
   */
  async builtImageProblem(reference: ImageReference, user: string): Promise<string | undefined> {
    return builtImageProblem(reference, user, await this.pushPaths(), async (repository) => (await this.deps.pushedBy?.(repository)) ?? []);
  }

  /** The push path of every system, building or not, enabled or not: images pushed there stay. */
  private async pushPaths(): Promise<PushPath[]> {
    const systems = [...(await this.deps.store.list()), ...(this.deps.defaultSystem ? [this.deps.defaultSystem] : [])];
    return systems.flatMap((s) => parsePushPath(s.build.pushTo) ?? []);
  }

  /** Building on needs a limit on the processes of build steps. */
  private assertBuildable(system: System): void {
    if (system.build.enabled && !this.deps.buildProcessLimit) throw invalidInput({ buildEnabled: BUILDS_NEED_PROCESS_LIMIT });
  }

  private rules(): AccessRules {
    if (!this.deps.access) throw new Error('SystemService needs access rules to answer callers');
    return this.deps.access;
  }

  /** Re-seals admin credentials with the current key; returns how many changed. */
  async rotateKeys(): Promise<RotationResult> {
    return resealWithCurrentKey(
      this.deps.keyring,
      await this.deps.store.credentials(),
      (c) => adminCredentialAd(c.id, c.pattern),
      (id, sealed) => this.deps.store.resealCredential(id, sealed, this.now()),
    );
  }
}
