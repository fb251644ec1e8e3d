/**
 * The digests images point at, which no clean-up deletes: read in one place,
 * so that a new way of pointing at a digest is added here once. Through knex.
 */
import type { Knex } from 'knex';
import { parseReference } from '../registry/reference.js';
import { DEFAULT_KEPT_REVISIONS } from '../systems/schema.js';
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
 * its newest check found, candidates aside: what a launch starts), the
 * digests of the revisions it keeps, and the content its newest candidate
 * check read (a moved tag's, waiting for its owner to accept it). Keys
 * `registry/repository@digest`. `owner`: only that user's images.
 *
 * The kept revisions are revisions/service.ts's `keptRevisions()`: the
 * newest `keptRevisions` of the image's system (default
 * DEFAULT_KEPT_REVISIONS) and the one it runs (its current digest, above).
 * Each revision is of the repository its own reference names: an image
 * edited to another repository still keeps its earlier builds' revisions.
 */
export async function keptDigests(db: Knex, filter: { owner?: string } = {}): Promise<KeptDigests> {
  const kept = new Map<string, 'current' | 'revision'>();
  const keep = (reference: unknown, digests: unknown[], why: 'current' | 'revision') => {
    const parsed = repositoryOf(String(reference));
    if (!parsed) return;
    for (const digest of why === 'current' ? [parsed.digest, ...digests] : digests) {
      const key = typeof digest === 'string' && digest ? manifestKey(parsed.repository, digest) : undefined;
      // A current digest wins over the same digest kept as a revision (the reason shown).
      if (key && (why === 'current' || !kept.has(key))) kept.set(key, why);
    }
  };
  const newestCheck = (candidate: boolean) =>
    db.raw('(select max(newest.id) from checks newest where newest.image_id = i.id and newest.candidate = ?)', [candidate]);
  const query = db('images as i')
    .leftJoin('checks as c', function () {
      this.on('c.id', '=', newestCheck(false));
    })
    .leftJoin('checks as w', function () {
      this.on('w.id', '=', newestCheck(true));
    })
    .leftJoin('systems as s', 's.slug', 'i.system')
    .select(
      'i.id',
      'i.reference',
      'c.digest',
      'c.manifest_digest',
      'w.reference as candidate_reference',
      'w.digest as candidate_digest',
      'w.manifest_digest as candidate_manifest_digest',
      's.kept_revisions',
    );
  // One owner's images suffice for their builds: nobody else may point at them (systems/pushPath.ts).
  if (filter.owner !== undefined) query.where('i.owner', filter.owner);
  const images = (await query) as Row[];
  const keepOf = new Map<number, number>();
  for (const row of images) {
    keep(row.reference, [row.digest, row.manifest_digest], 'current');
    if (row.candidate_reference) keep(row.candidate_reference, [row.candidate_digest, row.candidate_manifest_digest], 'revision');
    keepOf.set(
      Number(row.id),
      row.kept_revisions === null || row.kept_revisions === undefined ? DEFAULT_KEPT_REVISIONS : Number(row.kept_revisions),
    );
  }
  const revisions = db('revisions')
    .select('image_id', 'reference', 'digest', 'manifest_digest')
    .orderBy([{ column: 'image_id' }, { column: 'number', order: 'desc' }]);
  if (filter.owner !== undefined) revisions.where('owner', filter.owner);
  let image: number | undefined;
  let seen = 0;
  for (const row of (await revisions) as Row[]) {
    const id = Number(row.image_id);
    if (id !== image) [image, seen] = [id, 0];
    // Newest first: the image's newest `keep` are kept (an image of a removed system keeps the default).
    if (seen++ < (keepOf.get(id) ?? DEFAULT_KEPT_REVISIONS)) keep(row.reference, [row.digest, row.manifest_digest], 'revision');
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
