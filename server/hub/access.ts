/**
 * Who may do what, in one place, for pages and the API alike: services call
 * these with the identity of the caller before they do anything, so that a
 * new route cannot forget a rule.
 */
import { forbidden, notFound } from '../errors.js';
import { SCOPES, hasAccessScope, hasScope, isServiceAdmin, type HubIdentity } from './identity.js';

export class AccessRules {
  /** `accessScopes`: a token must carry one of these to use the service (JupyterHub's access scopes). */
  constructor(private readonly accessScopes: readonly string[]) {}

  /** Whether the identity is the spawner hook (or anything else with the launch scope). */
  isLauncher(actor: HubIdentity): boolean {
    return hasScope(actor, SCOPES.launch);
  }

  /** 403 for a token that may use nothing of this service. */
  useService(actor: HubIdentity): void {
    if (!hasAccessScope(actor, this.accessScopes) && !this.isLauncher(actor) && !isServiceAdmin(actor)) {
      throw forbidden(`This token has no access to custom-images; it needs the scope ${this.accessScopes[0]}`);
    }
  }

  /**
   * Reading `owner`'s images, checks and launch parameters, and starting a
   * check: the owner, and the spawner hook for any user. Someone else's images
   * look exactly like none (404).
   */
  readImagesOf(actor: HubIdentity, owner: string): void {
    if (this.isOwner(actor, owner) || this.isLauncher(actor)) return;
    this.useService(actor);
    throw notFound('User');
  }

  /** Saving, changing and deleting `owner`'s images: the owner alone. */
  writeImagesOf(actor: HubIdentity, owner: string): void {
    if (this.isOwner(actor, owner)) return;
    this.useService(actor);
    throw notFound('User');
  }

  /** Hub admins and holders of the admin scope manage systems and site credentials. */
  manageSystems(actor: HubIdentity): void {
    if (!isServiceAdmin(actor)) throw forbidden('Only hub admins (or holders of custom:custom-images:admin) manage systems.');
  }

  /** Publishing an image for everyone on a system: hub admins and holders of the admin scope. */
  publishImages(actor: HubIdentity): void {
    if (!isServiceAdmin(actor))
      throw forbidden('Only hub admins (or holders of custom:custom-images:admin) publish images for everyone on a system.');
  }

  /**
   * Using someone else's image (seeing it, launching it, copying it): when it is
   * published for everyone, or shared with a group the user is in. Never its
   * credential, edits, deletion, re-sharing or check logs: those stay the owner's.
   */
  mayUseShared(image: { published: unknown }, sharedWithUsersGroup: boolean): boolean {
    return image.published !== null || sharedWithUsersGroup;
  }

  private isOwner(actor: HubIdentity, owner: string): boolean {
    return actor.kind === 'user' && actor.name === owner && hasAccessScope(actor, this.accessScopes);
  }
}
