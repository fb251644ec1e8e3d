/**
 * The repository a build pushes to: its target (`registry/path:tag`)
 * without the tag. A tag holds no "/" (a registry's port does, before the
 * path), so the last ":" after the last "/" is the tag's.
 */
export function targetRepository(target: string): string {
  const colon = target.lastIndexOf(':');
  return colon > target.lastIndexOf('/') ? target.slice(0, colon) : target;
}
