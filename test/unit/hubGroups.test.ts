import { describe, expect, it } from 'vitest';
import { HubGroups } from '../../server/hub/groups.js';

/** A hub whose group list the test changes, counting how often it was asked. */
function hubWith(groups: string[]) {
  const hub = {
    groups,
    asked: 0,
    groupNames: async () => {
      hub.asked += 1;
      await new Promise((r) => setTimeout(r, 5));
      return [...hub.groups];
    },
    groupsOf: async () => [],
  };
  return hub;
}

describe('the hub group names a share is checked against', () => {
  it('include a group an admin made just after the names were last read', async () => {
    const hub = hubWith(['lab']);
    const groups = new HubGroups(hub, 300);
    expect(await groups.groupNamesWith(['lab'])).toEqual(['lab']);
    hub.groups.push('new-lab');
    expect(await groups.groupNamesWith(['new-lab'])).toContain('new-lab');
    expect(hub.asked).toBe(2);
  });

  it('are read from the kept list while every wanted name is in it', async () => {
    const hub = hubWith(['lab', 'ops']);
    const groups = new HubGroups(hub, 300);
    await groups.groupNamesWith(['lab']);
    await groups.groupNamesWith(['ops', 'lab']);
    expect(hub.asked).toBe(1);
  });

  it('cost the hub one request for a burst of unknown names', async () => {
    const hub = hubWith(['lab']);
    const groups = new HubGroups(hub, 300);
    await groups.groupNames();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => groups.groupNamesWith([`typo${i}`])));
    expect(answers.every((a) => a.join() === 'lab')).toBe(true);
    expect(hub.asked).toBe(2);
  });
});
