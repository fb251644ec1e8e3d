/**
 * Hub groups as sharing needs them: a user's groups (for the spawner hook,
 * which asks on a user's behalf with its own token) and the hub's group
 * names (for the share form), each kept for the identity cache time, as a
 * browser session's groups are, so that a user removed from a group at the
 * hub loses what was shared with it within that time.
 */
import type { HubClient } from './client.js';

export class HubGroups {
  private readonly members = new Map<string, { groups: Promise<string[]>; expires: number }>();
  private names: { list: Promise<string[]>; expires: number } | undefined;
  /** The hub's answer being awaited, which requests that found a name missing meanwhile share. */
  private refreshing: Promise<string[]> | undefined;

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
   * those kept (a group an admin made a moment ago). Requests that find a
   * name missing while the hub is being asked share its answer, so a burst
   * of unknown names costs the hub one request at a time, and a name the
   * hub has is never refused for the kept list being a few seconds old.
   */
  async groupNamesWith(wanted: readonly string[]): Promise<string[]> {
    const kept = await this.groupNames();
    if (wanted.every((name) => kept.includes(name))) return kept;
    return this.refreshing ?? this.fetchNames();
  }

  private fetchNames(): Promise<string[]> {
    const list = this.hub.groupNames();
    list.catch(() => (this.names = undefined));
    this.refreshing = list;
    const done = () => {
      if (this.refreshing === list) this.refreshing = undefined;
    };
    list.then(done, done);
    this.names = { list, expires: this.now() + this.cacheSeconds * 1000 };
    return list;
  }
}
