/**
 * The directory of a repository build that holds the Dockerfile and is the
 * build context (issue #27): a path inside the repository, checked twice.
 * Its syntax when the build is submitted ({@link directoryProblem}, pure:
 * nothing absolute, no `..`, no `.git`); then against the repository's own
 * tree, read from git objects rather than a checkout
 * ({@link findDirectory}): every component a directory (mode 040000), none
 * a symbolic link (a link anywhere in the path could point out of the
 * repository, and is refused whether or not it does), none missing. The
 * second check runs at submission and again in the job, on the commit the
 * job checks out: a branch may move in between.
 */

/** The request field the directory comes in (form and API). */
export const DIRECTORY_FIELD = 'gitDirectory';

/** Longer than any sensible path inside a repository. */
export const DIRECTORY_MAX_LENGTH = 255;

/** What the syntax check makes of a typed directory: its normal form ('' for the top), or why it is refused. */
export type DirectoryParse = { ok: true; directory: string } | { ok: false; message: string };

/** Git allows any name in a tree but these: the directory is looked up in the tree, never handed to a shell. */
const hasControl = (text: string) => [...text].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

/**
 * The directory as typed, to the form every later step uses: components
 * joined by `/`, no leading `./`, no trailing `/`; '' for the top. Refuses
 * what could leave the repository or reach into `.git`, in words that name
 * the field.
 */
export function parseDirectory(raw: string): DirectoryParse {
  const typed = raw.trim();
  if (typed === '' || typed === '.' || typed === './') return { ok: true, directory: '' };
  const refuse = (why: string): DirectoryParse => ({
    ok: false,
    message: `The directory with the Dockerfile ${why}; enter a path inside the repository, e.g. docker or envs/gpu`,
  });
  if (typed.length > DIRECTORY_MAX_LENGTH) return refuse(`has at most ${DIRECTORY_MAX_LENGTH} characters`);
  if (typed.startsWith('/') || /^[A-Za-z]:/.test(typed)) return refuse('is a path inside the repository, not an absolute one');
  if (typed.includes('\\')) return refuse('separates its parts with /, not \\');
  const parts = typed.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) return refuse('may not leave the repository (..)');
  if (parts.some((part) => part.toLowerCase() === '.git')) return refuse('may not be in .git');
  if (hasControl(typed)) return refuse('has a control character');
  return { ok: true, directory: parts.join('/') };
}

/** Why a typed directory is refused before anything is fetched; undefined when its syntax is fine. */
export function directoryProblem(raw: string): string | undefined {
  const parsed = parseDirectory(raw);
  return parsed.ok ? undefined : parsed.message;
}

/** An entry of a git tree, as isomorphic-git's readTree gives it. */
export interface GitTreeEntry {
  path: string;
  mode: string;
  oid: string;
  type: 'blob' | 'tree' | 'commit';
}

/** Why the directory is not usable in the repository's tree, in words; never thrown for a good one. */
export class DirectoryNotUsable extends Error {
  readonly field = DIRECTORY_FIELD;
}

/**
 * Walks `directory` (in {@link parseDirectory}'s form) down from the root
 * tree `rootTree`, one component at a time; returns the directory's tree.
 *
 * @throws DirectoryNotUsable when a component is missing, a symbolic link, a
 *   submodule or a file.
 */
export async function findDirectory(
  readTree: (oid: string) => Promise<GitTreeEntry[]>,
  rootTree: string,
  directory: string,
  commit: string,
): Promise<string> {
  let oid = rootTree;
  const walked: string[] = [];
  for (const part of directory === '' ? [] : directory.split('/')) {
    walked.push(part);
    const here = walked.join('/');
    const entry = (await readTree(oid)).find((e) => e.path === part);
    const at = `at commit ${commit.slice(0, 12)}`;
    if (!entry) throw new DirectoryNotUsable(`The repository has no directory ${here} ${at}: check the directory with the Dockerfile`);
    if (entry.mode === '120000')
      throw new DirectoryNotUsable(
        `${here} is a symbolic link in the repository ${at}: the directory with the Dockerfile is a real directory, with no link on its path`,
      );
    if (entry.type !== 'tree') throw new DirectoryNotUsable(`${here} is not a directory in the repository ${at}`);
    oid = entry.oid;
  }
  return oid;
}
