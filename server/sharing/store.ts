/** Rows of `image_shares`, and the images a user may use because they are shared with them or published. */
import type { Knex } from 'knex';
import { imageFromRow, type ImageRow } from '../images/store.js';

type Row = Record<string, unknown>;

export class ShareStore {
  constructor(private readonly db: Knex) {}

  /** The groups image `id` is shared with, sorted. */
  async groupsOf(id: number): Promise<string[]> {
    return (await this.groupsOfImages([id])).get(id) ?? [];
  }

  /** The groups each of the images is shared with, sorted; one query for all. */
  async groupsOfImages(ids: readonly number[]): Promise<Map<number, string[]>> {
    const groups = new Map<number, string[]>();
    if (ids.length === 0) return groups;
    const rows = (await this.db('image_shares').whereIn('image_id', ids).orderBy('group_name').select('image_id', 'group_name')) as Row[];
    for (const r of rows) groups.set(Number(r.image_id), [...(groups.get(Number(r.image_id)) ?? []), String(r.group_name)]);
    return groups;
  }

  /** Shares image `id` with exactly `groups` (added ones are recorded as shared by `by`). */
  async setGroups(id: number, groups: readonly string[], by: string, now: Date): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('image_shares').where({ image_id: id }).whereNotIn('group_name', groups).delete();
      const existing = new Set(
        ((await trx('image_shares').where({ image_id: id }).select('group_name')) as Row[]).map((r) => String(r.group_name)),
      );
      const added = groups.filter((g) => !existing.has(g));
      if (added.length > 0)
        await trx('image_shares').insert(added.map((group) => ({ image_id: id, group_name: group, shared_by: by, created_at: now })));
    });
  }

  /** Other users' images that `user` may use: shared with one of `groups`, or published; newest published first. */
  async visibleTo(user: string, groups: readonly string[]): Promise<Array<{ image: ImageRow; groups: string[] }>> {
    const rows = (await this.db('images')
      .whereNot({ owner: user })
      .andWhere((q) => {
        q.whereNotNull('published_at');
        if (groups.length > 0) q.orWhereIn('id', this.db('image_shares').select('image_id').whereIn('group_name', groups));
      })
      .orderBy('id')) as Row[];
    const images = rows.map(imageFromRow);
    const through = new Map<number, string[]>();
    if (images.length > 0 && groups.length > 0) {
      const shares = (await this.db('image_shares')
        .whereIn(
          'image_id',
          images.map((i) => i.id),
        )
        .whereIn('group_name', groups)
        .orderBy('group_name')) as Row[];
      for (const s of shares) through.set(Number(s.image_id), [...(through.get(Number(s.image_id)) ?? []), String(s.group_name)]);
    }
    return images.map((image) => ({ image, groups: through.get(image.id) ?? [] }));
  }

  /** Every published image, whoever owns it, by system and id (withdrawn ones too: sharing/publication.ts decides). */
  async published(): Promise<ImageRow[]> {
    return ((await this.db('images').whereNotNull('published_at').orderBy(['system', 'id'])) as Row[]).map(imageFromRow);
  }

  /** Whether image `id` is shared with one of `groups`. */
  async sharedWithAny(id: number, groups: readonly string[]): Promise<boolean> {
    if (groups.length === 0) return false;
    return (await this.db('image_shares').where({ image_id: id }).whereIn('group_name', groups).first('image_id')) !== undefined;
  }
}
