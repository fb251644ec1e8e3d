/**
 * "Base image + packages": pip requirements, a conda environment.yml and
 * Debian/Ubuntu packages, each checked line by line, and the Dockerfile the
 * service writes for them (shown to the researcher, who may take it over).
 * Pure.
 */
import { parse as parseYaml } from 'yaml';

/** pip options a requirements file may carry; -r, -c and -e name files or checkouts a build does not have. */
const PIP_OPTIONS = new Set([
  '--index-url',
  '-i',
  '--extra-index-url',
  '--find-links',
  '-f',
  '--no-index',
  '--pre',
  '--prefer-binary',
  '--only-binary',
  '--no-binary',
  '--trusted-host',
  // pip-compile --generate-hashes writes it on top: every requirement then carries its --hash.
  '--require-hashes',
]);

const NAME = '[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?';
const VERSION_CLAUSE = '(?:===|==|!=|<=|>=|~=|<|>)\\s*[A-Za-z0-9.*+!_-]+';
/** PEP 508: a name, extras, then version clauses or `@ url`, then markers after `;`. */
const REQUIREMENT = new RegExp(
  `^${NAME}\\s*(?:\\[\\s*${NAME}(?:\\s*,\\s*${NAME})*\\s*\\])?\\s*` +
    `(?:\\(?\\s*${VERSION_CLAUSE}(?:\\s*,\\s*${VERSION_CLAUSE})*\\s*\\)?|@\\s*\\S+)?\\s*(?:;.+)?$`,
);

/** A Debian package name, optionally with `:architecture` and `=version`. */
const APT_PACKAGE = /^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?(?:=[A-Za-z0-9.+:~-]+)?$/;

/** A requirement given as a URL alone: an archive, a wheel, or a VCS checkout (`git+https://…#egg=name`). */
const URL_REQUIREMENT = /^(?:(?:git|hg|svn|bzr)\+)?(?:https?|ssh):\/\/\S+$/;

/** The logical lines of a requirements file (continuations joined), each with the number of its first line. */
function logicalLines(text: string): Array<{ line: string; number: number }> {
  const result: Array<{ line: string; number: number }> = [];
  let current: { line: string; number: number } | undefined;
  text.split(/\r?\n/).forEach((raw, index) => {
    const part = raw.replace(/(^|\s)#.*$/, '');
    const continued = /\\\s*$/.test(part);
    const text = part.replace(/\\\s*$/, '').trim();
    current = current ? { line: `${current.line} ${text}`.trim(), number: current.number } : { line: text, number: index + 1 };
    if (continued) return;
    if (current.line !== '') result.push(current);
    current = undefined;
  });
  if (current && current.line !== '') result.push(current);
  return result;
}

/** Problems of a requirements.txt, each naming its line; empty when pip would read it. */
export function requirementProblems(text: string): string[] {
  const problems: string[] = [];
  for (const { line: raw, number } of logicalLines(text)) {
    // Hash-checking mode (pip-compile --generate-hashes) puts --hash options after the requirement.
    const line = raw.replace(/\s+--hash[=\s]\S+/g, '').trim();
    if (line.startsWith('-')) {
      const option = line.split(/[\s=]/)[0] ?? '';
      if (!PIP_OPTIONS.has(option)) {
        problems.push(
          `Line ${number}: "${line}" is not an option a build can use (${option} refers to other files or checkouts); list the packages themselves`,
        );
      }
      continue;
    }
    if (!REQUIREMENT.test(line) && !URL_REQUIREMENT.test(line)) {
      problems.push(
        `Line ${number}: "${line}" is not a requirement; write a package name with an optional version, e.g. numpy==1.26.4 or pandas>=2`,
      );
    }
  }
  return problems;
}

/** The apt packages of a whitespace- or comma-separated list, and what is wrong with it. */
export function aptPackages(text: string): { packages: string[]; problems: string[] } {
  const packages = text.split(/[\s,]+/).filter(Boolean);
  const bad = packages.filter((p) => !APT_PACKAGE.test(p));
  const problems = bad.length
    ? [
        `${bad.map((p) => `"${p}"`).join(', ')} ${bad.length === 1 ? 'is not a package name' : 'are not package names'}: lower-case Debian names such as libgdal-dev or git=1:2.39.2-1`,
      ]
    : [];
  if (packages.length > 200) problems.push(`At most 200 packages (${packages.length} given)`);
  return { packages, problems };
}

/** The first line of what a parser threw: its position and reason, not the rest of its excerpt. */
export function parserReason(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

/** What an environment.yml at `path` must be, said when it is something else. */
const notMapping = (path: string) =>
  `${path} is a mapping with "dependencies:" (and optionally "channels:"), as conda env export writes it`;

/**
 * A conda environment.yml as conda reads it: its dependencies (null for a
 * document with nothing in it), or a problem naming `path`.
 */
export function environmentDependencies(text: string, path = 'environment.yml'): { dependencies: unknown[] | null } | { problem: string } {
  let parsed: unknown;
  try {
    // Without the check for repeated keys: the library's is quadratic (a 256 KiB mapping of short keys took 17 s).
    parsed = parseYaml(text, { uniqueKeys: false });
  } catch (err) {
    return { problem: `${path} is not valid YAML: ${parserReason(err)}` };
  }
  if (parsed === null || parsed === undefined) return { dependencies: null };
  if (typeof parsed !== 'object' || Array.isArray(parsed)) return { problem: notMapping(path) };
  const dependencies = (parsed as Record<string, unknown>).dependencies;
  return { dependencies: Array.isArray(dependencies) ? dependencies : [] };
}

/** Problems of a conda environment.yml: it must be YAML with a list of dependencies. */
export function environmentProblems(text: string): string[] {
  if (text.trim() === '') return [];
  const read = environmentDependencies(text);
  if ('problem' in read) return [read.problem];
  if (read.dependencies === null) return [notMapping('environment.yml')];
  if (read.dependencies.length === 0)
    return ['environment.yml lists no dependencies: add "dependencies:" with the packages, e.g. - numpy=1.26'];
  return [];
}

/** What the Dockerfile for packages is written from. */
export interface PackageRecipe {
  /** The base image, as offered by the system. */
  base: string;
  pip: string;
  conda: string;
  apt: string[];
  /** Uploaded files (wheels, archives) pip may install from, at the context's top. */
  files: string[];
}

const WORK = '/tmp/custom-images';

/** A shell word in single quotes. */
function quote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Writes `text` to `file` in a RUN step, so that the Dockerfile needs nothing but the uploads. */
function writeFile(file: string, text: string): string {
  const lines = text.replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n');
  return `RUN mkdir -p ${WORK} && printf '%s\\n' \\\n${lines.map((l) => `      ${quote(l)}`).join(' \\\n')} \\\n    > ${file}`;
}

/**
 * The Dockerfile for a base image plus packages: root for the installs (apt
 * needs it; pip and conda write where the base keeps Python), the image's
 * notebook user after. The server's uid is the system's choice at launch
 * in any case.
 */
export function packagesDockerfile(recipe: PackageRecipe): string {
  const out = [`# Written by custom-images: ${recipe.base} plus packages.`, `FROM ${recipe.base}`, 'USER root'];
  if (recipe.apt.length > 0) {
    out.push(
      'RUN apt-get update \\\n' +
        ` && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${recipe.apt.join(' ')} \\\n` +
        ' && rm -rf /var/lib/apt/lists/*',
    );
  }
  // The JSON form: file names may hold spaces.
  if (recipe.files.length > 0) out.push(`COPY ${JSON.stringify([...recipe.files, `${WORK}/files/`])}`);
  if (recipe.conda.trim() !== '') {
    out.push(writeFile(`${WORK}/environment.yml`, recipe.conda));
    out.push(
      `RUN if command -v mamba >/dev/null; then mamba env update -n base -f ${WORK}/environment.yml; ` +
        `else conda env update -n base -f ${WORK}/environment.yml; fi \\\n && (conda clean -afy || true)`,
    );
  }
  // The requirements as they were checked: continuations joined, comments and blank lines dropped.
  const requirements = logicalLines(recipe.pip).map((l) => l.line);
  if (requirements.length > 0) {
    out.push(writeFile(`${WORK}/requirements.txt`, requirements.join('\n')));
    // Debian 12 and Ubuntu 23.04+ mark their Python as externally managed; older pip ignores the variable.
    out.push(
      `RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir${recipe.files.length > 0 ? ` --find-links ${WORK}/files` : ''} -r ${WORK}/requirements.txt`,
    );
  }
  out.push('USER ${NB_UID:-1000}');
  return `${out.join('\n')}\n`;
}
