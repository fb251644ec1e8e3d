/**
 * Sharing: an owner shares an image with hub groups, a hub admin publishes
 * one for everyone on its system; receivers see, launch and copy it, never
 * its credential, edits, deletion, re-sharing or check logs. The rules are
 * AccessRules'; this service applies them with the user's hub groups.
 */
import { z } from 'zod';
import { auditEntry, imageTarget, type AuditLog } from '../audit/store.js';
import { conflict, invalidInput, notFound, AppError } from '../errors.js';
import { inputError } from '../forms.js';
import type { AccessRules } from '../hub/access.js';
import type { HubGroups } from '../hub/groups.js';
import type { HubIdentity } from '../hub/identity.js';
import { systemSummary, type ImageService, type ImageView } from '../images/service.js';
import { imageStatus, type CheckSummary, type ImageStatus } from '../images/status.js';
import type { ImageRow, ImageStore } from '../images/store.js';
import type { System, SystemCatalog } from '../systems/schema.js';
import { checkedDigest, publicationState, servesPublication } from './publication.js';
import type { ShareStore } from './store.js';
import { parseReference } from '../registry/reference.js';

/** What a receiver sees of someone else's image: never its credential or check log. */
export interface SharedImageView {
  id: number;
  owner: string;
  name: string;
  system: { slug: string; displayName: string; enabled: boolean };
  reference: string;
  mountPath: string;
  status: ImageStatus;
  /** Published for everyone on its system (with the admin's description), or shared with the user's groups. */
  access: 'published' | 'shared';
  /** The admin's publication text while the publication serves, else ''. */
  description: string;
  /** The owner's own description of the image (beside the admin's text, never replaced by it). */
  ownerDescription: string;
  /** The user's groups it is shared with. */
  groups: string[];
}

/** A publication as its owner and admins see it: the digest published, and why it no longer serves, if so. */
export interface PublicationView {
  at: Date;
  by: string;
  description: string;
  /** Null for a publication from before digests were recorded. */
  digest: string | null;
  /** Why it is not offered any more (see sharing/publication.ts); null while it serves. */
  withdrawn: string | null;
}

/** With whom an owner's image is shared, as the owner sees it. */
export interface SharesView {
  groups: string[];
  published: PublicationView | null;
  launchesByOthers: number;
}

/** A published image, for admins: whose, where, and whether the publication serves. */
export interface PublishedImageView {
  id: number;
  owner: string;
  name: string;
  system: { slug: string; displayName: string; enabled: boolean };
  reference: string;
  /** The owner's own description, beside the admin's publication text. */
  ownerDescription: string;
  publication: PublicationView;
}

const GROUP_NAME = z.string().trim().min(1, 'A group name is empty').max(255, 'A group name has at most 255 characters');
const ShareInputSchema = z.object({
  groups: z.preprocess(
    // The form sends one text field, "lab, physics"; the API a list.
    (v) => (typeof v === 'string' ? v.split(',').filter((g) => g.trim() !== '') : v),
    z.array(GROUP_NAME, { message: 'List the hub groups to share with, e.g. ["lab"]' }).max(50, 'Share with at most 50 groups'),
  ),
});
const PublishInputSchema = z.object({
  description: z.string().trim().max(300, 'The description has at most 300 characters').default(''),
  /** The digest the admin saw; the image must still be checked at it. Blank: what it is checked at now. */
  digest: z
    .string()
    .trim()
    .regex(/^(sha256:[0-9a-f]{64})?$/, 'The digest is sha256: and 64 hexadecimal digits, as the image shows it')
    .default(''),
});
const CopyInputSchema = z.object({
  from: z.coerce.number({ message: 'The id of the image to copy' }).int().positive('The id of the image to copy'),
  name: z.string().optional(),
});

/**
 * The words a receiver gets for an image that is not (or no longer) theirs to
 * use: the same whether it exists, was unshared or was deleted, so that no
 * answer tells one id from another.
 */
export function notShared(): AppError {
  return new AppError(
    'not_found',
    'The chosen image is not yours and not shared with you (any more): its owner may have stopped sharing it or deleted it, or you are no longer in the group it was shared with.',
  );
}

/** The words for a published image that no longer serves: everyone who launched it sees them. */
function withdrawn(image: ImageRow, why: string): AppError {
  return conflict(
    `"${image.name}" was published for everyone, but ${why}: the publication is withdrawn until an admin publishes it again.`,
  );
}

function publicationOf(image: ImageRow, check: CheckSummary | undefined): PublicationView | null {
  const state = publicationState(image, check);
  if (!image.published || !state) return null;
  return { ...image.published, withdrawn: state.serving ? null : state.why };
}

function sharesOf(image: ImageRow, groups: string[], check: CheckSummary | undefined): SharesView {
  return { groups, published: publicationOf(image, check), launchesByOthers: image.launchesByOthers };
}

export interface SharingServiceDeps {
  access: AccessRules;
  images: ImageService;
  imageStore: ImageStore;
  shares: ShareStore;
  groups: HubGroups;
  systems: SystemCatalog;
  checks: { latestFor(owner: string, imageIds: number[]): Promise<Map<number, CheckSummary>> };
  audit: AuditLog;
  now?: () => Date;
}

export class SharingService {
  private readonly now: () => Date;

  constructor(private readonly deps: SharingServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** With whom `owner`'s image is shared: for the owner. */
  async sharesOf(actor: HubIdentity, owner: string, id: number): Promise<SharesView> {
    this.deps.access.writeImagesOf(actor, owner);
    return this.sharesView(await this.ownImage(owner, id));
  }

  /** With whom each of `owner`'s images is shared, by image id (the owner's page): two queries for all. */
  async sharesOfAll(actor: HubIdentity, owner: string): Promise<Map<number, SharesView>> {
    this.deps.access.writeImagesOf(actor, owner);
    const images = await this.deps.imageStore.list(owner);
    const ids = images.map((i) => i.id);
    const groups = await this.deps.shares.groupsOfImages(ids);
    const checks = await this.deps.checks.latestFor(owner, ids);
    return new Map(images.map((image) => [image.id, sharesOf(image, groups.get(image.id) ?? [], checks.get(image.id))]));
  }

  /** Shares `owner`'s image with exactly the groups given (none: shared with nobody); the groups must exist at the hub. */
  async share(actor: HubIdentity, owner: string, id: number, raw: unknown): Promise<SharesView> {
    this.deps.access.writeImagesOf(actor, owner);
    const image = await this.ownImage(owner, id);
    const parsed = ShareInputSchema.safeParse(raw);
    if (!parsed.success) throw inputError(parsed.error, 'input');
    const groups = [...new Set(parsed.data.groups.map((g) => g.trim()))];
    const known = new Set(await this.deps.groups.groupNamesWith(groups));
    const unknown = groups.filter((g) => !known.has(g));
    if (unknown.length > 0) {
      throw invalidInput({
        groups: `The hub has no group ${unknown.map((g) => `"${g}"`).join(', ')}; its groups are: ${[...known].sort().join(', ') || 'none'}`,
      });
    }
    return this.setGroups(actor, image, groups);
  }

  /** Stops sharing `owner`'s image with one group. */
  async unshare(actor: HubIdentity, owner: string, id: number, group: string): Promise<SharesView> {
    this.deps.access.writeImagesOf(actor, owner);
    const image = await this.ownImage(owner, id);
    return this.setGroups(
      actor,
      image,
      (await this.deps.shares.groupsOf(id)).filter((g) => g !== group),
    );
  }

  /** Shares `image` with exactly `groups`, on record. */
  private async setGroups(actor: HubIdentity, image: ImageRow, groups: string[]): Promise<SharesView> {
    await this.deps.shares.setGroups(image.id, groups, actor.name, this.now());
    await this.deps.audit.append(auditEntry(actor, 'image.share', imageTarget(image.id), { owner: image.owner, groups }), this.now());
    return this.sharesView(image);
  }

  /**
   * Publishes an image for everyone on its system (hub admins): the digest it
   * is checked at now, which must be the one the admin saw when they say
   * which (`digest`). An image with its owner's registry password is
   * published by its owner only: everyone's launches pull with it, which
   * only the owner can agree to.
   */
  async publish(actor: HubIdentity, owner: string, id: number, raw: unknown): Promise<SharesView> {
    this.deps.access.publishImages(actor);
    const image = await this.ownImage(owner, id);
    const parsed = PublishInputSchema.safeParse(raw ?? {});
    if (!parsed.success) throw inputError(parsed.error, 'input');
    if (actor.name !== owner && (await this.deps.imageStore.credentialFor(owner, id))) {
      throw conflict(
        `"${image.name}" pulls with ${owner}'s registry password; only ${owner} can publish it. Ask them, or save the image yourself with a site credential.`,
      );
    }
    const check = await this.newestCheck(image);
    const digest = check && imageStatus(image, check).code === 'passed' ? checkedDigest(check) : null;
    if (!digest) {
      throw conflict(
        `"${image.name}" is published as the digest its check found, and it has no passed check of what it names now (${imageStatus(image, check).label.toLowerCase()}): publish it once it is checked.`,
      );
    }
    if (parsed.data.digest !== '' && parsed.data.digest !== digest) {
      throw conflict(
        `"${image.name}" changed since you saw it: it is now ${digest}, not ${parsed.data.digest}. Look at it again before you publish it.`,
        {
          field: 'digest',
        },
      );
    }
    const now = this.now();
    const published = { at: now, by: actor.name, description: parsed.data.description, digest };
    await this.deps.imageStore.setPublished(id, published);
    await this.deps.audit.append(
      auditEntry(actor, 'image.publish', imageTarget(id), { owner, description: parsed.data.description, digest }),
      now,
    );
    return this.sharesView({ ...image, published });
  }

  /** Every published image, offered or withdrawn (hub admins): what they published, and what became of it. */
  async publications(actor: HubIdentity): Promise<PublishedImageView[]> {
    this.deps.access.publishImages(actor);
    const images = await this.deps.shares.published();
    const checks = await this.checksOf(images);
    const systems = new Map<string, System | undefined>();
    for (const image of images) if (!systems.has(image.system)) systems.set(image.system, await this.deps.systems.get(image.system));
    return images.flatMap((image) => {
      const publication = publicationOf(image, checks.get(image.id));
      if (!publication) return [];
      return [
        {
          id: image.id,
          owner: image.owner,
          name: image.name,
          system: systemSummary(image.system, systems.get(image.system)),
          reference: image.reference,
          ownerDescription: image.description,
          publication,
        },
      ];
    });
  }

  /** Withdraws a published image (hub admins). */
  async unpublish(actor: HubIdentity, owner: string, id: number): Promise<void> {
    this.deps.access.publishImages(actor);
    await this.ownImage(owner, id);
    await this.deps.imageStore.setPublished(id, null);
    await this.deps.audit.append(auditEntry(actor, 'image.unpublish', imageTarget(id), { owner }), this.now());
  }

  /** The hub's group names for the share form; [] when the hub does not tell (the service lacks list:groups). */
  async groupChoices(): Promise<string[]> {
    return (await this.deps.groups.groupNames().catch(() => [])).sort();
  }

  /** Other users' images `user` may use: published ones first (while they serve), then those shared with their groups. */
  async sharedWith(actor: HubIdentity, user: string): Promise<SharedImageView[]> {
    this.deps.access.readImagesOf(actor, user);
    // A hub that will not tell the groups (the service's role lacks read:users:groups) must not take the spawn
    // form down with it: published images are still offered, and a launch of a shared one says why it fails.
    const groups = await this.groupsFor(actor, user).catch((err: unknown) => {
      if (err instanceof AppError && err.code === 'hub_failed') return [];
      throw err;
    });
    const listed = await this.deps.shares.visibleTo(user, groups);
    const checks = await this.checksOf(listed.map(({ image }) => image));
    // A withdrawn publication is offered only to those it is also shared with.
    const visible = listed.filter(({ image, groups }) => groups.length > 0 || servesPublication(image, checks.get(image.id)));
    const systems = new Map<string, System | undefined>();
    for (const { image } of visible) if (!systems.has(image.system)) systems.set(image.system, await this.deps.systems.get(image.system));
    const views = visible.map(({ image, groups }) => this.view(image, groups, systems.get(image.system), checks.get(image.id)));
    return [...views.filter((v) => v.access === 'published'), ...views.filter((v) => v.access === 'shared')];
  }

  /**
   * Someone else's image, for a launch or a copy by `user`: only while its
   * publication serves (`check`: its newest check), or when it is shared with
   * one of their groups; the words otherwise say why it may be gone.
   */
  async usableBy(actor: HubIdentity, user: string, image: ImageRow, check: CheckSummary | undefined): Promise<void> {
    const published = servesPublication(image, check);
    const shared = !published && (await this.deps.shares.sharedWithAny(image.id, await this.groupsFor(actor, user)));
    if (this.deps.access.mayUseShared({ published: published ? image.published : null }, shared)) return;
    const state = publicationState(image, check);
    if (state && !state.serving) throw withdrawn(image, state.why);
    throw notShared();
  }

  /** Counts a launch of an image by someone other than its owner (the owner's page shows it). */
  async launchedByOther(image: ImageRow): Promise<void> {
    await this.deps.imageStore.countLaunchByOther(image.id);
  }

  /** Copies a shared or published image into `user`'s own images, without its credential. */
  async copy(actor: HubIdentity, user: string, raw: unknown): Promise<ImageView> {
    this.deps.access.writeImagesOf(actor, user);
    const parsed = CopyInputSchema.safeParse(raw ?? {});
    if (!parsed.success) throw inputError(parsed.error, 'input');
    const image = await this.deps.imageStore.getById(parsed.data.from);
    if (!image || image.owner === user) throw notShared();
    await this.usableBy(actor, user, image, await this.newestCheck(image));
    // A copy would read the owner's build with the site's credential after any share ends.
    if (await this.deps.images.builtImageProblem(parseReference(image.reference), user)) {
      throw conflict(
        `"${image.name}" is ${image.owner}'s build: it can be started from "Shared with you" while it is shared, not copied into your images.`,
      );
    }
    return this.deps.images.create(actor, user, {
      name: parsed.data.name?.trim() || image.name,
      system: image.system,
      image: image.reference,
      mountPath: image.mountPath ?? '',
    });
  }

  /** A user's hub groups: their own identity's when they ask, else the hub's answer (the spawner hook asks for them). */
  private async groupsFor(actor: HubIdentity, user: string): Promise<string[]> {
    if (actor.kind === 'user' && actor.name === user) return actor.groups;
    return this.deps.groups.groupsOf(user);
  }

  private async sharesView(image: ImageRow): Promise<SharesView> {
    return sharesOf(image, await this.deps.shares.groupsOf(image.id), await this.newestCheck(image));
  }

  private async newestCheck(image: ImageRow): Promise<CheckSummary | undefined> {
    return (await this.deps.checks.latestFor(image.owner, [image.id])).get(image.id);
  }

  /** The newest check of each of `images` (of any owners), by image id: a query per owner. */
  private async checksOf(images: readonly ImageRow[]): Promise<Map<number, CheckSummary>> {
    const byOwner = new Map<string, number[]>();
    for (const image of images) byOwner.set(image.owner, [...(byOwner.get(image.owner) ?? []), image.id]);
    const checks = new Map<number, CheckSummary>();
    for (const [owner, ids] of byOwner) for (const [id, check] of await this.deps.checks.latestFor(owner, ids)) checks.set(id, check);
    return checks;
  }

  private async ownImage(owner: string, id: number): Promise<ImageRow> {
    const image = await this.deps.imageStore.get(owner, id);
    if (!image) throw notFound('Image');
    return image;
  }

  private view(image: ImageRow, groups: string[], system: System | undefined, check: CheckSummary | undefined): SharedImageView {
    return {
      id: image.id,
      owner: image.owner,
      name: image.name,
      system: systemSummary(image.system, system),
      reference: image.reference,
      mountPath: image.mountPath ?? system?.defaultMountPath ?? '',
      status: imageStatus(image, check),
      access: servesPublication(image, check) ? 'published' : 'shared',
      description: servesPublication(image, check) ? (image.published?.description ?? '') : '',
      ownerDescription: image.description,
      groups,
    };
  }
}
