/**
 * Who is calling: a hub user or a hub service, as `/hub/api/user` describes the
 * owner of a token, with the scopes that token carries.
 */
import { z } from 'zod';

/** The custom scopes this service defines (JupyterHub >= 3.0). */
export const SCOPES = {
  /** May ask launch parameters for any user: the spawner hook's token. */
  launch: 'custom:custom-images:launch',
  /** May manage systems and their policies. */
  admin: 'custom:custom-images:admin',
} as const;

/** The subset of JupyterHub's user/service model that we use. */
export const HubIdentitySchema = z.object({
  kind: z.enum(['user', 'service']).default('user'),
  name: z.string().min(1),
  admin: z.boolean().default(false),
  groups: z.array(z.string()).default([]),
  scopes: z.array(z.string()).default([]),
});
export type HubIdentity = z.infer<typeof HubIdentitySchema>;

/**
 * Whether the identity holds `scope`, unfiltered or filtered to `name`
 * (`custom:custom-images:launch` or `...!user=name`, as JupyterHub writes filters).
 */
export function hasScope(identity: HubIdentity, scope: string, user?: string): boolean {
  return identity.scopes.some((held) => held === scope || (user !== undefined && held === `${scope}!user=${user}`));
}

/** Hub admins and holders of the admin scope manage systems. */
export function isServiceAdmin(identity: HubIdentity): boolean {
  return identity.admin || hasScope(identity, SCOPES.admin);
}

/** Whether the token was issued for use with this service (JupyterHub's access scopes). */
export function hasAccessScope(identity: HubIdentity, accessScopes: readonly string[]): boolean {
  return identity.scopes.some((held) => accessScopes.includes(held));
}
