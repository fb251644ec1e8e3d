/**
 * A system's package mirrors (many sites reach no package index but their
 * own): a pip index and extra index, conda channels, apt sources. Builds of
 * repositories write them into the Dockerfile (builds/repo2docker.ts), and
 * they stay in the image for what researchers install: so a mirror's
 * address never carries credentials. Pure.
 */

/** What is wrong with a mirror URL, in words; undefined when it may be used. */
export function mirrorUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `"${value}" is not a URL: write it as http(s)://host/path`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `${value}: a mirror is reached over http or https`;
  if (url.username || url.password)
    return `${url.host}: a mirror's URL carries no credentials (they would be in every image built here); allow the build host by address instead`;
  if (/[\s'"\\]/.test(value)) return `${value}: a mirror URL has no spaces, quotes or backslashes`;
  return undefined;
}

/** An apt source line (`deb [options] URL suite [components]`): what is wrong with it, or undefined. */
export function aptSourceProblem(line: string): string | undefined {
  const match = /^deb(?:\s+\[[A-Za-z0-9=,._ -]+\])?\s+(\S+)\s+[A-Za-z0-9./_-]+(?:\s+[A-Za-z0-9._-]+)*$/.exec(line);
  if (!match?.[1]) return `"${line}" is not an apt source: write deb [trusted=yes] http://mirror.example.org/debian bookworm main`;
  return mirrorUrlProblem(match[1]);
}
