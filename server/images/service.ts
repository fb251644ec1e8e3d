/**
 * A user's image configurations: validation, ownership, sealed credentials
 * and their audit entries (created, updated with the fields changed, deleted). Web handlers call this; it calls the store.
 */
import { randomUUID } from 'node:crypto';
import { auditEntry, changedFields, imageTarget } from '../audit/store.js';
import { invalidInput, notFound } from '../errors.js';
import type { AccessRules } from '../hub/access.js';
import type { HubIdentity } from '../hub/identity.js';
import type { RegistryCredentials } from '../registry/client.js';
import { parseReference, pinnedImage, type ImageReference } from '../registry/reference.js';
import type { Keyring } from '../secrets/keyring.js';
import type { System, SystemCatalog } from '../systems/schema.js';
import type { RegistryCredentialRow } from '../systems/store.js';
import { fieldErrors, imageInputSchema, unpinnedWarning, type ImageInput } from './schema.js';
import { imageStatus, type BuildSummaryForStatus, type CheckSummary, type ImageStatus } from './status.js';
import type { CredentialRow, ImageRow, ImageStore } from './store.js';

export type { ImageStatus };

/** How far an image is from a fast start, for a tile. */
export type StartReadiness = { state: 'preparing'; percent: number | null } | { state: 'ready' } | { state: 'failed'; message: string };

/** An image configuration as pages and the API show it; never a secret. */
export interface ImageView {
  id: number;
  owner: string;
  name: string;
  /** The owner's description, plain text ('' for none). */
  description: string;
  system: { slug: string; displayName: string; enabled: boolean };
  /** How the system starts servers; undefined for a system that no longer exists. */
  systemSpawner: System['spawner'] | undefined;
  referenceInput: string;
  reference: string;
  registry: string;
  /** The path the data is mounted at, the system's default when none was chosen. */
  mountPath: string;
  mountPathIsDefault: boolean;
  credential: { registry: string; username: string } | undefined;
  status: ImageStatus;
  /** For a checked image on a Docker system: whether it is in the engine yet, so that Start is fast. */
  start: StartReadiness | undefined;
  warnings: string[];
  createdAt: Date;
  updatedAt: Date;
}

/** Registry credentials opened for a pull; only the check and launch code see these. */
export interface OpenedCredential {
  registry: string;
  username: string;
  password: string;
}

export interface ImageServiceDeps {
  store: ImageStore;
  /** Who may read and write whose images. */
  access: AccessRules;
  systems: SystemCatalog;
  keyring: Keyring;
  /**
   * Credentials an admin stored for the image's registry pattern, used when
   * the image (of `owner`) has none; chosen among `candidates` when the caller read them.
   */
  siteCredentials?: (
    reference: ImageReference,
    owner: string,
    candidates?: readonly RegistryCredentialRow[],
  ) => Promise<RegistryCredentials | undefined>;
  /**
   * Why `user` may not have `reference` as their image: another user's
   * build under a push path (systems/service.ts); undefined when they may.
   */
  builtImageProblem?: (reference: ImageReference, user: string) => Promise<string | undefined>;
  /**
   * The newest check of each image, for its status; and the newest candidate
   * check (a moved tag's new content waiting for its owner), if it tells them.
   */
  checks?: {
    latestFor(owner: string, imageIds: number[]): Promise<Map<number, CheckSummary>>;
    newestCandidates?(owner: string, imageIds: number[]): Promise<Map<number, CheckSummary>>;
  };
  /** The newest build of each image the service built, for its status. */
  builds?: { latestFor(owner: string, imageIds: number[]): Promise<Map<number, BuildSummaryForStatus>> };
  /** What the Docker engine holds of checked images; undefined without an engine. */
  readiness?: { readiness(images: string[]): Promise<Map<string, StartReadiness>> } | undefined;
  /** Refuses (in words) a save that would take `owner` or the system past a quota (storage/quota.ts). */
  quota?: (owner: string, system: System, adding: { images: number }) => Promise<void>;
  /** In a deletion's transaction, before the image's rows go: its built manifests' grace starts (storage/store.ts). */
  onDelete?: (store: ImageStore, imageId: number, now: Date) => Promise<void>;
  now?: () => Date;
}

/** The associated data that binds a sealed secret to its row and owner. */
export function credentialAssociatedData(credentialId: string, owner: string): string {
  return `custom-images/credential/v1/${credentialId}/${owner}`;
}

export class ImageService {
  private readonly now: () => Date;

  constructor(private readonly deps: ImageServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /**
   * Systems a user can choose: the enabled ones, and the image's own system
   * even after an admin disabled it (an image may stay where it is).
   */
  async listSystems(currentSystem?: string): Promise<System[]> {
    const systems = await this.deps.systems.listEnabled();
    if (currentSystem && !systems.some((s) => s.slug === currentSystem)) {
      const system = await this.deps.systems.get(currentSystem);
      if (system) systems.push(system);
    }
    return systems;
  }

  /** `owner`'s images, for the owner or the spawner hook. */
  async list(actor: HubIdentity, owner: string): Promise<ImageView[]> {
    this.deps.access.readImagesOf(actor, owner);
    const rows = await this.deps.store.list(owner);
    const ids = rows.map((r) => r.id);
    const credentials = await this.deps.store.credentialsFor(owner, ids);
    const [checks, builds, candidates] = await this.latestOf(owner, ids);
    // One lookup per system, not per image.
    const systems = new Map<string, Promise<System | undefined>>();
    const systemOf = (slug: string) => {
      if (!systems.has(slug)) systems.set(slug, this.deps.systems.get(slug));
      return systems.get(slug) as Promise<System | undefined>;
    };
    const views = await Promise.all(
      rows.map(async (row) =>
        this.view(row, await systemOf(row.system), credentials.get(row.id), checks.get(row.id), builds.get(row.id), candidates.get(row.id)),
      ),
    );
    return this.withReadiness(views, checks);
  }

  /** One of `owner`'s images, for the owner or the spawner hook; 404 when there is no such image of theirs. */
  async get(actor: HubIdentity, owner: string, id: number): Promise<ImageView> {
    this.deps.access.readImagesOf(actor, owner);
    return this.load(owner, id);
  }

  /** One of `owner`'s images, for services that have checked who asks. */
  async load(owner: string, id: number): Promise<ImageView> {
    const row = await this.deps.store.get(owner, id);
    if (!row) throw notFound('Image');
    const [checks, builds, candidates] = await this.latestOf(owner, [id]);
    const [view] = await this.withReadiness(
      [
        this.view(
          row,
          await this.deps.systems.get(row.system),
          await this.deps.store.credentialFor(owner, id),
          checks.get(id),
          builds.get(id),
          candidates.get(id),
        ),
      ],
      checks,
    );
    return view as ImageView;
  }

  /** The newest check, build and candidate check of each image: what its status is made of. */
  private async latestOf(
    owner: string,
    ids: number[],
  ): Promise<[Map<number, CheckSummary>, Map<number, BuildSummaryForStatus>, Map<number, CheckSummary>]> {
    return Promise.all([
      this.deps.checks?.latestFor(owner, ids) ?? new Map<number, CheckSummary>(),
      this.deps.builds?.latestFor(owner, ids) ?? new Map<number, BuildSummaryForStatus>(),
      this.deps.checks?.newestCandidates?.(owner, ids) ?? new Map<number, CheckSummary>(),
    ]);
  }

  /** Adds how far each passed image on a Docker system is from a fast start (one query for all). */
  private async withReadiness(views: ImageView[], checks: Map<number, CheckSummary>): Promise<ImageView[]> {
    const readiness = this.deps.readiness;
    if (!readiness) return views;
    const pinned = new Map<number, string>();
    for (const view of views) {
      const check = checks.get(view.id);
      const digest = check?.manifestDigest ?? check?.digest;
      if (view.status.code === 'passed' && digest && view.systemSpawner === 'docker')
        pinned.set(view.id, pinnedImage(parseReference(view.reference), digest));
    }
    const states = await readiness.readiness([...new Set(pinned.values())]);
    return views.map((view) => {
      const image = pinned.get(view.id);
      return image ? { ...view, start: states.get(image) } : view;
    });
  }

  /** Validates and saves a new configuration; nothing is stored when anything is wrong. */
  async create(actor: HubIdentity, owner: string, raw: unknown): Promise<ImageView> {
    this.deps.access.writeImagesOf(actor, owner);
    const input = await this.validate(raw, undefined, undefined, owner);
    await this.deps.quota?.(owner, input.system, { images: 1 });
    const sealedFor = this.sealer(input, owner);
    const now = this.now();
    const id = await this.deps.store.transaction(async (store) => {
      const imageId = await store.insert(this.fields(owner, input), now);
      if (sealedFor) await store.putCredential({ ...sealedFor(), imageId }, now);
      await store.audit(auditEntry(actor, 'image.create', imageTarget(imageId), auditDetails(input)), now);
      return imageId;
    });
    return this.load(owner, id);
  }

  /** Validates and saves changes; a blank password keeps the stored one. */
  async update(actor: HubIdentity, owner: string, id: number, raw: unknown): Promise<ImageView> {
    this.deps.access.writeImagesOf(actor, owner);
    const row = await this.deps.store.get(owner, id);
    if (!row) throw notFound('Image');
    const existing = await this.deps.store.credentialFor(owner, id);
    const input = await this.validate(raw, existing, row.system, owner);
    if (input.system.slug !== row.system) await this.deps.quota?.(owner, input.system, { images: 1 });
    const sealedFor = this.sealer(input, owner);
    const now = this.now();
    await this.deps.store.transaction(async (store) => {
      await store.update(owner, id, this.fields(owner, input), now);
      const change = input.credential;
      if (change.action === 'remove' || (change.action === 'none' && existing)) await store.deleteCredential(owner, id);
      if (change.action === 'keep' && existing && change.username !== existing.username) {
        await store.updateCredentialUsername(owner, id, change.username, now);
      }
      if (sealedFor) await store.putCredential({ ...sealedFor(), imageId: id }, now);
      const changed = [
        ...changedFields(auditedFields(row), auditedFields(this.fields(owner, input))),
        ...credentialChanged(existing, input),
      ];
      await store.audit(auditEntry(actor, 'image.update', imageTarget(id), { ...auditDetails(input), changed }), now);
    });
    return this.load(owner, id);
  }

  /** Deletes the configuration and its secret for good. */
  async remove(actor: HubIdentity, owner: string, id: number): Promise<void> {
    this.deps.access.writeImagesOf(actor, owner);
    const now = this.now();
    await this.deps.store.transaction(async (store) => {
      const row = await store.get(owner, id);
      if (!row) throw notFound('Image');
      await this.deps.onDelete?.(store, id, now);
      await store.delete(owner, id);
      await store.audit(auditEntry(actor, 'image.delete', imageTarget(id), { owner, name: row.name, reference: row.reference }), now);
    });
  }

  /** The opened registry credential of an image, for a pull; undefined when it has none. */
  async openCredential(owner: string, id: number): Promise<OpenedCredential | undefined> {
    const credential = await this.deps.store.credentialFor(owner, id);
    return credential ? this.open(credential, owner) : undefined;
  }

  /** What a pull of the image authenticates with: its own login, else the site's for its registry, else nothing. */
  async pullCredentials(owner: string, id: number, reference: ImageReference): Promise<RegistryCredentials | undefined> {
    return this.pullWith(await this.openCredential(owner, id), reference, owner);
  }

  /**
   * Why `owner` may not use `reference` as their image (someone else's build),
   * in words; undefined when they may. Checks, pulls and launches ask before
   * they contact a registry, with the image's owner (a receiver launches the
   * owner's image).
   */
  async builtImageProblem(reference: ImageReference, owner: string): Promise<string | undefined> {
    return this.deps.builtImageProblem?.(reference, owner);
  }

  /**
   * The credentials a pull of a launched image uses (see {@link pullCredentials}),
   * from rows the launch has read already: the image's own credential and the
   * admin credentials whose pattern may match its registry.
   */
  async pullCredentialsOf(
    image: ImageRow,
    credential: CredentialRow | undefined,
    siteCandidates: readonly RegistryCredentialRow[],
  ): Promise<{ reference: ImageReference; pull: RegistryCredentials | undefined }> {
    const reference = parseReference(image.reference);
    const own = credential ? this.open(credential, image.owner) : undefined;
    return { reference, pull: await this.pullWith(own, reference, image.owner, siteCandidates) };
  }

  /** Opens with the owner the caller asked for: a row moved to another owner does not open. */
  private open(credential: CredentialRow, owner: string): OpenedCredential {
    const password = this.deps.keyring.open(credential, credentialAssociatedData(credential.id, owner));
    return { registry: credential.registry, username: credential.username, password };
  }

  private async pullWith(
    own: OpenedCredential | undefined,
    reference: ImageReference,
    owner: string,
    siteCandidates?: readonly RegistryCredentialRow[],
  ): Promise<RegistryCredentials | undefined> {
    if (own) return { username: own.username, password: own.password };
    return this.deps.siteCredentials?.(reference, owner, siteCandidates);
  }

  private async validate(
    raw: unknown,
    existing: CredentialRow | undefined,
    currentSystem: string | undefined,
    owner: string,
  ): Promise<ImageInput> {
    const systems = await this.listSystems(currentSystem);
    const result = imageInputSchema({ systems, existingCredential: existing }).safeParse(raw);
    if (!result.success) {
      throw invalidInput(fieldErrors(result.error) as Record<string, string>);
    }
    // With the user's own registry password too: the push path is the service's, its images their builders'.
    const notYours = await this.builtImageProblem(result.data.reference, owner);
    if (notYours) throw invalidInput({ image: notYours });
    return result.data;
  }

  /** Seals the new password before any row is written, so a missing key stores nothing. */
  private sealer(input: ImageInput, owner: string): (() => Omit<CredentialRow, 'imageId' | 'updatedAt'>) | undefined {
    const change = input.credential;
    if (change.action !== 'set') return undefined;
    const id = randomUUID();
    const sealed = this.deps.keyring.seal(change.password, credentialAssociatedData(id, owner));
    return () => ({ id, owner, registry: input.registry, username: change.username, ...sealed });
  }

  private fields(owner: string, input: ImageInput) {
    return {
      owner,
      name: input.name,
      description: input.description,
      system: input.system.slug,
      referenceInput: input.referenceInput,
      reference: input.reference.normalized,
      registry: input.registry,
      mountPath: input.mountPath,
    };
  }

  private view(
    row: ImageRow,
    system: System | undefined,
    credential: CredentialRow | undefined,
    check: CheckSummary | undefined,
    build: BuildSummaryForStatus | undefined,
    candidate: CheckSummary | undefined,
  ): ImageView {
    const reference = parseReference(row.reference);
    return {
      id: row.id,
      owner: row.owner,
      name: row.name,
      description: row.description,
      system: systemSummary(row.system, system),
      referenceInput: row.referenceInput,
      reference: row.reference,
      registry: row.registry,
      mountPath: row.mountPath ?? system?.defaultMountPath ?? '',
      mountPathIsDefault: row.mountPath === null,
      credential: credential ? { registry: credential.registry, username: credential.username } : undefined,
      status: imageStatus(row, check, build, candidate),
      start: undefined,
      systemSpawner: system?.spawner,
      warnings: reference.unpinned ? [unpinnedWarning(reference)] : [],
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }
}

/** An image's system as views show it: by its slug alone when the system is gone (and then not enabled). */
export function systemSummary(slug: string, system: System | undefined): ImageView['system'] {
  return { slug, displayName: system?.displayName ?? slug, enabled: system?.enabled ?? false };
}

/** A saved configuration as its audit entry tells it. */
function auditDetails(input: ImageInput): Record<string, unknown> {
  const change = input.credential;
  return {
    name: input.name,
    system: input.system.slug,
    reference: input.reference.normalized,
    mountPath: input.mountPath,
    // What happened to the credential, never the credential itself.
    credential: change.action,
    ...(change.action === 'set' || change.action === 'keep' ? { username: change.username, registry: input.registry } : {}),
  };
}

/** The fields of an image an update may change, by the names the form and the API give them. */
function auditedFields(row: Pick<ImageRow, 'name' | 'description' | 'system' | 'referenceInput' | 'mountPath'>): Record<string, unknown> {
  return { name: row.name, description: row.description, system: row.system, image: row.referenceInput, mountPath: row.mountPath };
}

/** `['credential']` when an update changes the stored login (a new password, none, or another username). */
function credentialChanged(existing: CredentialRow | undefined, input: ImageInput): string[] {
  const change = input.credential;
  const changed =
    change.action === 'set' ||
    (existing !== undefined && (change.action === 'remove' || change.action === 'none')) ||
    (change.action === 'keep' && existing !== undefined && change.username !== existing.username);
  return changed ? ['credential'] : [];
}
