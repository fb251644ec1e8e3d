/** How many revisions a system keeps: one input rule for the admin form, the API and seed files. */
import { describe, expect, it } from 'vitest';
import { firstMessages } from '../../server/forms.js';
import { SystemInputSchema } from '../../server/systems/service.js';

const system = { slug: 'lab', displayName: 'Lab', allowedRegistries: ['*'], defaultMountPath: '/home/jovyan/work' };

describe('keptRevisions', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['5', 5],
    [1, 1],
    ['100', 100],
  ])('%j is kept as %j (blank: the default, 10)', (raw, kept) => {
    const parsed = SystemInputSchema.parse({ ...system, keptRevisions: raw });
    expect(parsed.keptRevisions).toBe(kept);
  });

  it.each(['0', '101', 'x', '2.5', -1, 1.5])('%j is refused in words naming the field', (raw) => {
    const parsed = SystemInputSchema.safeParse({ ...system, keptRevisions: raw });
    expect(parsed.success).toBe(false);
    if (parsed.success) return;
    expect(firstMessages(parsed.error, 'slug')).toEqual({
      keptRevisions: 'Revisions kept per image: a whole number from 1 to 100, or blank for 10',
    });
  });
});
