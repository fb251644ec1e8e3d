/** Callers for tests that use the services directly: users who may use the service, and its rules. */
import { AccessRules } from '../../server/hub/access.js';
import type { HubIdentity } from '../../server/hub/identity.js';

/** The access scope a hub gives its users for this service (the demo's). */
const ACCESS_SCOPE = 'access:services';

/** The service's rules, for the scope below. */
export const testAccess = new AccessRules([ACCESS_SCOPE]);

/** A hub user who may use the service. */
export function testUser(name: string): HubIdentity {
  return { kind: 'user', name, admin: false, groups: [], scopes: [ACCESS_SCOPE] };
}
