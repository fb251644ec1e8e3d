/**
 * Hub groups as sharing needs them: a user's groups (for the spawner hook,
 * which asks on a user's behalf with its own token) and the hub's group
 * names (for the share form), each kept for the identity cache time, as a
 * browser session's groups are, so that a user removed from a group at the
 * hub loses what was shared with it within that time.
 */
import type { HubClient } from './client.js';

/** How old the kept group names must be before a name missing from them makes the hub be asked again. */
const REFRESH_AFTER_MS = 2000;

export class HubGroups {
  private readonly members = new Map<string, { groups: Promise<string[]>; expires: number }>();
  private names: { list: Promise<string[]>; expires: number; fetched: number } | undefined;

  constructor(
    private readonly hub: Pick<HubClient, 'groupsOf' | 'groupNames'>,
    private readonly cacheSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The groups `user` is in at the hub. */
  groupsOf(user: string): Promise<string[]> {
    const hit = this.members.get(user);
    if (hit && hit.expires > this.now()) return hit.groups;
    const groups = this.hub.groupsOf(user);
    // A failed lookup is not kept.
    groups.catch(() => this.members.delete(user));
    if (this.members.size >= 10_000) this.members.clear();
    this.members.set(user, { groups, expires: this.now() + this.cacheSeconds * 1000 });
    return groups;
  }

  /** The names of the hub's groups. */
  groupNames(): Promise<string[]> {
    if (this.names && this.names.expires > this.now()) return this.names.list;
    return this.fetchNames();
  }

  /**
   * The hub's group names, asked again when one of `wanted` is not among
   * those kept (a group an admin made a moment ago), at most once every few
   * seconds: unknown names typed in a form must not make every request ask the hub.
   */
  async groupNamesWith(wanted: readonly string[]): Promise<string[]> {
    const kept = await this.groupNames();
    const missing = wanted.some((name) => !kept.includes(name));
    if (!missing || !this.names || this.now() - this.names.fetched < REFRESH_AFTER_MS) return kept;
    return this.fetchNames();
  }

  private fetchNames(): Promise<string[]> {
    const list = this.hub.groupNames();
    list.catch(() => (this.names = undefined));
    this.names = { list, expires: this.now() + this.cacheSeconds * 1000, fetched: this.now() };
    return list;
  }
}
