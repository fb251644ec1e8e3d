/**
 * Who may do what, in one place, for pages and the API alike: services call
 * these with the identity of the caller before they do anything, so that a
 * new route cannot forget a rule.
 */
import { forbidden, notFound } from '../errors.js';
import { SCOPES, hasAccessScope, hasScope, isServiceAdmin, type HubIdentity } from './identity.js';

export class AccessRules {
  /** The access scope messages name: this service's own (`access:services!service=…`) where the hub gave it. */
  private readonly scopeToAsk: string;

  /** `accessScopes`: a token must carry one of these to use the service (JupyterHub's access scopes). */
  constructor(private readonly accessScopes: readonly string[]) {
    this.scopeToAsk = accessScopes.find((scope) => scope.includes('!service=')) ?? accessScopes[0] ?? 'access:services';
  }

  /** Whether the identity is the spawner hook (or anything else with the launch scope). */
  isLauncher(actor: HubIdentity): boolean {
    return hasScope(actor, SCOPES.launch);
  }

  /**
   * Whether the identity administers the service: a hub admin or a holder of
   * the admin scope, with a token issued for this service (its access scope).
   * The admin flag is the user's, not the token's: any token of an admin
   * carries it, the token of their notebook server too (which an image they
   * launched can read), so the flag alone never suffices.
   */
  isAdmin(actor: HubIdentity): boolean {
    return isServiceAdmin(actor) && hasAccessScope(actor, this.accessScopes);
  }

  /** 403 for a token that may use nothing of this service. */
  useService(actor: HubIdentity): void {
    if (!hasAccessScope(actor, this.accessScopes) && !this.isLauncher(actor)) {
      throw forbidden(`This token has no access to custom-images; it needs the scope ${this.scopeToAsk}`);
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

  /** Systems, their build settings and site credentials: admins ({@link isAdmin}). */
  manageSystems(actor: HubIdentity): void {
    this.requireAdmin(actor, 'manage systems');
  }

  /** Storage, the clean-up and its dry run, keeping a volume: admins ({@link isAdmin}). */
  manageStorage(actor: HubIdentity): void {
    this.requireAdmin(actor, 'see storage or run the clean-up');
  }

  /** Forecasting a hub upgrade or a policy change over every image on a system, and publishing it: admins ({@link isAdmin}). */
  forecastUpgrades(actor: HubIdentity): void {
    this.requireAdmin(actor, 'forecast hub upgrades');
  }

  /** Publishing an image for everyone on a system: admins ({@link isAdmin}). */
  publishImages(actor: HubIdentity): void {
    this.requireAdmin(actor, 'publish images for everyone on a system');
  }

  /**
   * Building images, and reading what a build may use (the systems that build,
   * their networks and base images): a hub user with a token for this service.
   * The spawner hook and other services build nothing.
   */
  buildImages(actor: HubIdentity): void {
    if (actor.kind === 'user' && hasAccessScope(actor, this.accessScopes)) return;
    this.useService(actor);
    throw forbidden("Only hub users build images; this token is not a user's.");
  }

  /**
   * Using someone else's image (seeing it, launching it, copying it): when it is
   * published for everyone, or shared with a group the user is in. Never its
   * credential, edits, deletion, re-sharing or check logs: those stay the owner's.
   */
  mayUseShared(image: { published: unknown }, sharedWithUsersGroup: boolean): boolean {
    return image.published !== null || sharedWithUsersGroup;
  }

  private requireAdmin(actor: HubIdentity, what: string): void {
    if (this.isAdmin(actor)) return;
    if (isServiceAdmin(actor)) {
      throw forbidden(
        `This token may not ${what}: besides the admin role it needs the scope ${this.scopeToAsk} (log in to custom-images, or ask the hub for a token with that scope).`,
      );
    }
    throw forbidden(`Only hub admins (or holders of custom:custom-images:admin) ${what}.`);
  }

  private isOwner(actor: HubIdentity, owner: string): boolean {
    return actor.kind === 'user' && actor.name === owner && hasAccessScope(actor, this.accessScopes);
  }
}
