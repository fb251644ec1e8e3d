/**
 * The digests images point at, which no clean-up deletes: read in one place,
 * so that a new way of pointing at a digest (revisions, issue 25) is added
 * here once. Through knex.
 */
import type { Knex } from 'knex';
import { parseReference } from '../registry/reference.js';
import type { KeptDigests } from './rules.js';
import { manifestKey } from './store.js';

type Row = Record<string, unknown>;

/** `registry/repository` of an image reference; undefined for one that no longer parses. */
function repositoryOf(reference: string): { repository: string; digest: string | undefined } | undefined {
  try {
    const parsed = parseReference(reference);
    return { repository: `${parsed.registry}/${parsed.repository}`, digest: parsed.digest };
  } catch {
    return undefined;
  }
}

/**
 * Every image's current digest (the one its reference pins, else the one
 * its newest check found: what a launch starts) and, where the table
 * `revisions` exists, every digest an image keeps as a revision. Keys
 * `registry/repository@digest`. `owner`: only that user's images.
 */
export async function keptDigests(db: Knex, filter: { owner?: string } = {}): Promise<KeptDigests> {
  const kept = new Map<string, 'current' | 'revision'>();
  const query = db('images as i')
    .leftJoin('checks as c', function () {
      this.on('c.id', '=', db.raw('(select max(newest.id) from checks newest where newest.image_id = i.id)'));
    })
    .select('i.id', 'i.reference', 'c.digest', 'c.manifest_digest');
  // One owner's images suffice for their builds: nobody else may point at them (builds/pushPath.ts).
  if (filter.owner !== undefined) query.where('i.owner', filter.owner);
  const rows = (await query) as Row[];
  const repositories = new Map<number, string>();
  for (const row of rows) {
    const parsed = repositoryOf(String(row.reference));
    if (!parsed) continue;
    repositories.set(Number(row.id), parsed.repository);
    for (const digest of [parsed.digest, row.digest, row.manifest_digest]) {
      if (typeof digest === 'string' && digest) kept.set(manifestKey(parsed.repository, digest), 'current');
    }
  }
  if (await db.schema.hasTable('revisions')) {
    const columns = ['digest', 'manifest_digest'];
    const present: string[] = [];
    for (const column of columns) if (await db.schema.hasColumn('revisions', column)) present.push(column);
    if (present.length > 0) {
      const revisions = db('revisions').select(['image_id', ...present]);
      if (filter.owner !== undefined) revisions.whereIn('image_id', [...repositories.keys()]);
      for (const row of (await revisions) as Row[]) {
        const repository = repositories.get(Number(row.image_id));
        if (!repository) continue;
        for (const column of present) {
          const digest = row[column];
          if (typeof digest === 'string' && digest && !kept.has(manifestKey(repository, digest))) {
            kept.set(manifestKey(repository, digest), 'revision');
          }
        }
      }
    }
  }
  return kept;
}

/**
 * Digests others start: the current digests of images shared with a group,
 * and every digest an admin published (keys `registry/repository@digest`).
 */
export async function sharedAndPublished(db: Knex, kept: KeptDigests): Promise<{ shared: Set<string>; published: Set<string> }> {
  const published = new Set<string>();
  for (const row of (await db('images').whereNotNull('published_digest').select('reference', 'published_digest')) as Row[]) {
    const parsed = repositoryOf(String(row.reference));
    if (parsed) published.add(manifestKey(parsed.repository, String(row.published_digest)));
  }
  const sharedImages = (await db('images as i')
    .whereExists(db('image_shares as s').select('s.image_id').where('s.image_id', db.ref('i.id')))
    .select('i.reference')) as Row[];
  const sharedRepositories = new Set(sharedImages.flatMap((r) => repositoryOf(String(r.reference))?.repository ?? []));
  const shared = new Set<string>();
  for (const [key, why] of kept) {
    if (why === 'current' && sharedRepositories.has(key.slice(0, key.lastIndexOf('@')))) shared.add(key);
  }
  return { shared, published };
}
