/**
 * A repository without a Dockerfile, built as repo2docker would build it:
 * its configuration files are found by repo2docker's rules of precedence and
 * turned into a Dockerfile (shown to the researcher, held to the rules of
 * any Dockerfile). Pure: the repository comes in as a reader of its files,
 * the base image's facts (its config: entrypoint, command, environment) as
 * values.
 *
 * repo2docker's rules followed here (repo2docker/buildpacks/base.py,
 * python/__init__.py, conda/__init__.py, docker.py):
 * - `binder/` or `.binder/` (not both) holds the configuration files when
 *   present; files at the top are then ignored. The repository is still
 *   copied whole.
 * - A `Dockerfile` in that folder (or at the top without one) wins over
 *   everything: it is built as it is, with the repository as context.
 * - `environment.yml` (conda) comes before everything Python: with one,
 *   `requirements.txt`, `Pipfile`, `setup.py`/`pyproject.toml` and a Python
 *   `runtime.txt` are not read (repo2docker's conda buildpack is detected
 *   before its Pipfile and Python ones); an empty one installs nothing.
 * - Without it: `requirements.txt` (pip), `setup.py`, or `pyproject.toml`
 *   with a `[project]` and a `[build-system]` table, at the top when there is
 *   no binder folder (installed with `pip install .`, after
 *   requirements.txt), `runtime.txt` (`python-X[.Y[.Z]]`).
 * - Always: `apt.txt`, `postBuild` (made executable, run as the notebook
 *   user at the end, in the repository), `start` (the entrypoint: runs
 *   before the server's command and must `exec "$@"`).
 * - R (`install.R`, `DESCRIPTION`, `runtime.txt` with `r-…`), Julia
 *   (`Project.toml`, `REQUIRE`), Nix (`default.nix`) and pipenv (`Pipfile`,
 *   `Pipfile.lock`, without environment.yml) are not built here: refused
 *   with a sentence naming the file.
 *
 * Order of the written layers, as repo2docker's: the environment (apt, conda,
 * pip) from the configuration files alone, then the repository's files, then
 * what needs them. A change of notebooks rebuilds only the last layers.
 */
import { parse as parseToml } from 'smol-toml';
import { aptPackages, environmentDependencies, parserReason, requirementProblems } from './packages.js';

/** What the writer reads of a repository: its files by path from the top ('binder/requirements.txt'). */
export interface RepositoryReader {
  /** A regular file's text, or undefined when there is none (links and folders are not files). */
  file(path: string): string | undefined;
  /** Whether `path` is a folder (not a link to one). */
  isDirectory(path: string): boolean;
}

/** What of the base image the written Dockerfile depends on (its config, as the registry serves it). */
export interface BaseFacts {
  /** The base image as the Dockerfile's FROM names it. */
  image: string;
  entrypoint: readonly string[];
  cmd: readonly string[];
  /** `NAME=value` lines of its config. */
  env: readonly string[];
}

/** The site's package mirrors a system's builds use (systems/schema.ts). */
export interface PackageMirrors {
  pipIndexUrl?: string | undefined;
  pipExtraIndexUrl?: string | undefined;
  condaChannels?: readonly string[] | undefined;
  /** `deb …` lines: apt.txt is installed from these alone. */
  aptSources?: readonly string[] | undefined;
}

export interface RepositoryRecipe {
  base: BaseFacts;
  /** The uid and gid the repository's files belong to and postBuild runs as: the system's. */
  uid: number;
  gid: number;
  /** The notebook user's home: where the repository goes (repo2docker's REPO_DIR). */
  home: string;
  mirrors?: PackageMirrors | undefined;
}

/** How a repository is built: its own Dockerfile, or one written from its configuration files. */
export type RepositoryBuild =
  | { kind: 'dockerfile'; path: string; text: string }
  | {
      kind: 'written';
      dockerfile: string;
      /** The configuration files honoured, by path, in the order they apply. */
      honoured: string[];
      /** The start script's path, when there is one (shown to the researcher: it runs at every server start). */
      start: string | null;
    }
  | { kind: 'refused'; problems: string[] };

/** Files repo2docker reads for languages this service does not build, and the language each means. */
const OTHER_LANGUAGES: ReadonlyArray<{ file: string; language: string; topOnly?: boolean }> = [
  { file: 'install.R', language: 'R' },
  { file: 'DESCRIPTION', language: 'R', topOnly: true },
  { file: 'Project.toml', language: 'Julia' },
  { file: 'JuliaProject.toml', language: 'Julia' },
  { file: 'REQUIRE', language: 'Julia' },
  { file: 'default.nix', language: 'Nix' },
];

const WORK = '/tmp/custom-images';
/** The site's apt sources, apart from the base's own. */
const APT_SOURCES = '/etc/apt/custom-images-site.list';

/**
 * Sets the notebook server's root to its argument in /etc/jupyter's JSON
 * configuration, keeping what is there: notebook's (NotebookApp) and
 * jupyter_server's (ServerApp), whichever jupyterhub-singleuser runs.
 */
const ROOT_DIR_SCRIPT = [
  'import json, os, sys',
  'for name, app, key in (("notebook", "NotebookApp", "notebook_dir"), ("server", "ServerApp", "root_dir")):',
  '    path = "/etc/jupyter/jupyter_%s_config.json" % name',
  '    config = json.load(open(path)) if os.path.exists(path) else {}',
  '    config.setdefault(app, {})[key] = sys.argv[1]',
  '    json.dump(config, open(path, "w"), indent=1)',
];

/** A runtime.txt as repo2docker reads it: `python-X`, `python-X.Y` or `python-X.Y.Z` (its micro version is not kept). */
const PYTHON_RUNTIME = /^python-(\d+)(?:\.(\d+)(?:\.\d+)?)?$/;

/**
 * The configuration folder: `binder/` or `.binder/` when one is a folder
 * ('' for the top), or a problem when both are.
 */
export function configurationFolder(repository: RepositoryReader): { folder: string } | { problem: string } {
  const binder = repository.isDirectory('binder');
  const hidden = repository.isDirectory('.binder');
  if (binder && hidden)
    return { problem: 'The repository has both binder/ and .binder/: keep one of them (repo2docker refuses both, too)' };
  return { folder: binder ? 'binder' : hidden ? '.binder' : '' };
}

/** The Python version a runtime.txt asks for (`3.11`, or `3`: any Python 3), or a problem naming the file; undefined without one. */
export function runtimePython(text: string | undefined, path: string): { version: string } | { problem: string } | undefined {
  if (text === undefined) return undefined;
  const runtime = text.trim();
  const match = PYTHON_RUNTIME.exec(runtime);
  if (match) return { version: match[2] === undefined ? `${match[1]}` : `${match[1]}.${match[2]}` };
  if (/^r-/.test(runtime))
    return { problem: `${path} asks for R ("${runtime}"): this service builds Python environments only; use a Dockerfile for R` };
  return { problem: `${path} says "${runtime.slice(0, 80)}": write python-X.Y or python-X.Y.Z, e.g. python-3.11` };
}

/** Whether a Python `version` a runtime.txt asks for (`3`, `3.11`) is the `declared` X.Y of a base. */
function samePython(version: string, declared: string): boolean {
  return declared === version || declared.startsWith(`${version}.`);
}

/**
 * An environment.yml as repo2docker's conda buildpack reads it: what it
 * installs (nothing when it is empty or lists no dependencies: `conda env
 * update` then changes nothing), and whether its pip section names files of
 * the repository (`-e .`), which must then be there when it is installed.
 */
export function condaEnvironment(text: string, path: string): { dependencies: boolean; needsRepository: boolean } | { problem: string } {
  const read = environmentDependencies(text, path);
  if ('problem' in read) return read;
  if (!read.dependencies?.length) return { dependencies: false, needsRepository: false };
  // repo2docker's _should_preassemble_env: the last pip section is the one read.
  const pip = read.dependencies.filter((d): d is { pip: unknown } => typeof d === 'object' && d !== null && 'pip' in d).at(-1)?.pip;
  const needsRepository = Array.isArray(pip) && pip.some((line) => typeof line === 'string' && isLocalRequirement(line));
  return { dependencies: true, needsRepository };
}

/**
 * Whether a pyproject.toml makes the repository a package pip installs: it
 * has both a `[project]` and a `[build-system]` table, as repo2docker asks
 * (a file with `[tool.*]` tables only configures tools).
 */
export function pyprojectIsPackage(text: string, path: string): boolean | { problem: string } {
  let parsed: Record<string, unknown>;
  try {
    parsed = parseToml(text);
  } catch (err) {
    return { problem: `${path} is not valid TOML: ${parserReason(err)}` };
  }
  return 'project' in parsed && 'build-system' in parsed;
}

/** Whether the base image has conda or mamba (its environment names a conda prefix or puts one on PATH). */
export function baseHasConda(base: BaseFacts): boolean {
  return base.env.some(
    (line) => /^(CONDA_DIR|CONDA_PREFIX|MAMBA_ROOT_PREFIX)=/.test(line) || (/^PATH=/.test(line) && /conda|mamba/.test(line)),
  );
}

/** The Python version the base image declares (`PYTHON_VERSION` of the official python images), as X.Y; undefined when it says none. */
export function basePython(base: BaseFacts): string | undefined {
  const declared = base.env.find((line) => line.startsWith('PYTHON_VERSION='))?.slice('PYTHON_VERSION='.length);
  const match = declared ? /^(\d+)\.(\d+)/.exec(declared) : null;
  return match ? `${match[1]}.${match[2]}` : undefined;
}

/**
 * A pip requirement that names a file or folder of the repository: pip needs the repository to read it.
 * As repo2docker's is_local_pip_requirement, which also counts `-rother.txt` (pip takes the name attached)
 * and `git+file://…`; an editable requirement counts whatever it names.
 */
function isLocalRequirement(line: string): boolean {
  const text = line.replace(/(^|\s)#.*$/, '').trim();
  if (/^(-r|-c|-e)/.test(text) || /^(--requirement|--constraint|--editable)(\s|=|$)/.test(text)) return true;
  return /^(\.|\/)/.test(text) || /^(\S+\s*@\s*)?(git\+)?file:/i.test(text) || /^[a-z+]+:\/\/\./i.test(text);
}

/** Problems of a requirements file from a repository: local references (-r, -e .) are allowed, since the files are there. */
function repositoryRequirementProblems(text: string, path: string): string[] {
  const kept = text
    .split(/\r?\n/)
    .map((line) => (isLocalRequirement(line) ? '' : line))
    .join('\n');
  return requirementProblems(kept).map((problem) => `${path}: ${problem}`);
}

/**
 * A script written on Windows (CRLF) has `/bin/bash\r` for its interpreter: its line ends are made Unix ones in
 * the image before it runs, as repo2docker's are (its tests/venv/newline-conversion). The command's start, or ''.
 */
function unixLines(text: string, path: string): string {
  return text.includes('\r\n') ? `sed -i 's/\\r$//' ${quote(path)} && ` : '';
}

/** A shell word in single quotes. */
function quote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A JSON-array COPY source or destination (paths may hold spaces). */
function copyLine(flags: string, sources: string[], destination: string): string {
  return `COPY ${flags}${JSON.stringify([...sources, destination])}`;
}

/**
 * How `repository` is built under `recipe`: its Dockerfile (in the
 * configuration folder, or at the top without one), a Dockerfile written
 * from its configuration files, or refused with sentences naming the files.
 */
export function repositoryBuild(repository: RepositoryReader, recipe: RepositoryRecipe): RepositoryBuild {
  const found = configurationFolder(repository);
  if ('problem' in found) return { kind: 'refused', problems: [found.problem] };
  const folder = found.folder;
  const at = (name: string) => (folder ? `${folder}/${name}` : name);
  const read = (name: string) => repository.file(at(name));

  const dockerfile = read('Dockerfile');
  if (dockerfile !== undefined) return { kind: 'dockerfile', path: at('Dockerfile'), text: dockerfile };

  const problems: string[] = [];
  for (const { file, language, topOnly } of OTHER_LANGUAGES) {
    if (topOnly && folder) continue;
    if (read(file) !== undefined)
      problems.push(`${at(file)} asks for ${language}: this service builds Python environments only; use a Dockerfile for ${language}`);
  }

  // repo2docker's conda buildpack is detected before its Pipfile and Python ones: with an environment.yml, the
  // files only those read are not read (an R runtime.txt still means R: its R buildpack comes first).
  const environmentText = read('environment.yml');
  const conda = environmentText !== undefined;
  const notRead: string[] = [];
  const unlessConda = (name: string, text = read(name)): string | undefined => {
    if (text !== undefined && conda) notRead.push(at(name));
    return conda ? undefined : text;
  };
  const runtimeText = read('runtime.txt');
  const asksForR = runtimeText !== undefined && /^r-/.test(runtimeText.trim());
  const runtime = runtimePython(asksForR ? runtimeText : unlessConda('runtime.txt', runtimeText), at('runtime.txt'));
  if (runtime && 'problem' in runtime) problems.push(runtime.problem);
  const declared = basePython(recipe.base);
  if (runtime && 'version' in runtime && declared && !samePython(runtime.version, declared))
    problems.push(
      `${at('runtime.txt')} asks for Python ${runtime.version}, but the base image ${recipe.base.image} has Python ${declared}; choose a base image with Python ${runtime.version}`,
    );

  const environment = environmentText === undefined ? undefined : condaEnvironment(environmentText, at('environment.yml'));
  if (environment && 'problem' in environment) problems.push(environment.problem);
  else if (environment?.dependencies && !baseHasConda(recipe.base))
    problems.push(
      `${at('environment.yml')} needs conda, and the base image ${recipe.base.image} has neither conda nor mamba; choose a base image with conda, or list the packages in requirements.txt`,
    );
  const installsEnvironment = environment !== undefined && !('problem' in environment) && environment.dependencies;
  const environmentNeedsRepository = installsEnvironment && environment.needsRepository;

  for (const name of ['Pipfile', 'Pipfile.lock']) {
    if (unlessConda(name) !== undefined)
      problems.push(
        `${at(name)} asks for pipenv, which this service does not run; list the packages in requirements.txt (pipenv requirements > requirements.txt writes it)`,
      );
  }

  const aptText = read('apt.txt');
  const apt = aptText === undefined ? undefined : aptPackages(aptText.replace(/#.*$/gm, ''));
  if (apt) problems.push(...apt.problems.map((p) => `${at('apt.txt')}: ${p}`));

  const requirements = unlessConda('requirements.txt');
  if (requirements !== undefined) problems.push(...repositoryRequirementProblems(requirements, at('requirements.txt')));

  // repo2docker installs the repository as a package only from the top, and only without a binder folder.
  let packageFile: string | undefined;
  if (!folder && unlessConda('setup.py') !== undefined) packageFile = 'setup.py';
  const pyproject = folder ? undefined : unlessConda('pyproject.toml');
  if (pyproject !== undefined && !packageFile) {
    const isPackage = pyprojectIsPackage(pyproject, 'pyproject.toml');
    if (typeof isPackage === 'object') problems.push(isPackage.problem);
    else if (isPackage) packageFile = 'pyproject.toml';
  }
  if (problems.length > 0) return { kind: 'refused', problems };

  const home = recipe.home;
  const honoured: string[] = [];
  const mirrors = recipe.mirrors ?? {};
  const out = [
    `# Written by custom-images from the repository's configuration files, by repo2docker's rules.`,
    `FROM ${recipe.base.image}`,
    'USER root',
  ];
  // The site's mirrors: for the build, and for what researchers install in their servers.
  // REPO_DIR as repo2docker names it; one ENV step with the mirrors (each step costs the engine a commit).
  const env: string[] = [`REPO_DIR=${quote(home)}`];
  if (mirrors.pipIndexUrl) env.push(`PIP_INDEX_URL=${quote(mirrors.pipIndexUrl)}`);
  if (mirrors.pipExtraIndexUrl) env.push(`PIP_EXTRA_INDEX_URL=${quote(mirrors.pipExtraIndexUrl)}`);
  if (notRead.length > 0) out.push(`# Not read, as repo2docker does not read them beside environment.yml: ${notRead.join(', ')}`);
  out.push(`ENV ${env.join(' ')}`);
  if (runtime && 'version' in runtime) {
    honoured.push(at('runtime.txt'));
    // The base declared no version: asked of its Python, first, so that a mismatch costs no other step.
    const parts = runtime.version.split('.');
    const message = `${at('runtime.txt')} asks for Python ${runtime.version}, but the base image has another Python; choose a base image with Python ${runtime.version}`;
    out.push(
      `RUN python3 -c 'import sys; sys.exit(0 if sys.version_info[:${parts.length}] == (${parts.join(', ')}${parts.length === 1 ? ',' : ''}) else 1)' \\\n || { echo ${quote(message)} >&2; exit 1; }`,
    );
  }
  if (apt && apt.packages.length > 0) {
    honoured.push(at('apt.txt'));
    const sources = mirrors.aptSources ?? [];
    // With the site's apt sources, apt reads them alone (the base's own may be unreachable here); the base's stay as they were.
    const only = sources.length > 0 ? ` -o Dir::Etc::SourceList=${APT_SOURCES} -o Dir::Etc::SourceParts=${APT_SOURCES}.d` : '';
    out.push(
      (sources.length > 0
        ? `RUN mkdir -p ${APT_SOURCES}.d && printf '%s\\n' ${sources.map(quote).join(' ')} > ${APT_SOURCES} \\\n && apt-get update${only}`
        : 'RUN apt-get update') +
        ' \\\n' +
        ` && DEBIAN_FRONTEND=noninteractive apt-get install${only} -y --no-install-recommends ${apt.packages.join(' ')} \\\n` +
        ' && rm -rf /var/lib/apt/lists/*',
    );
  }
  const condaUpdate = (file: string) =>
    `RUN if command -v mamba >/dev/null; then mamba env update -n base -f ${file}; ` +
    `else conda env update -n base -f ${file}; fi \\\n && (conda clean -afy || true)`;
  if (installsEnvironment) {
    honoured.push(at('environment.yml'));
    const channels = mirrors.condaChannels ?? [];
    if (channels.length > 0) {
      // The site's channels come first; conda reads CONDARC besides its other configuration files.
      const lines = ['channels:', ...channels.map((c) => `  - ${c}`)];
      out.push(`RUN printf '%s\\n' ${lines.map(quote).join(' ')} > /etc/custom-images.condarc`);
      out.push('ENV CONDARC=/etc/custom-images.condarc');
    }
    // Its pip section naming repository files (-e .) waits for the copy, as repo2docker's does.
    if (!environmentNeedsRepository) {
      out.push(copyLine('', [at('environment.yml')], `${WORK}/environment.yml`));
      out.push(condaUpdate(`${WORK}/environment.yml`));
    }
  }
  // Debian 12 and Ubuntu 23.04+ mark their Python as externally managed; older pip ignores the variable.
  const pip = 'PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir';
  // Requirements that name files of the repository wait for its copy, as repo2docker's do.
  const requirementsNeedRepository = requirements !== undefined && requirements.split(/\r?\n/).some(isLocalRequirement);
  if (requirements !== undefined) {
    honoured.push(at('requirements.txt'));
    if (!requirementsNeedRepository) {
      out.push(copyLine('', [at('requirements.txt')], `${WORK}/requirements.txt`));
      out.push(`RUN ${pip} -r ${WORK}/requirements.txt`);
    }
  }

  // The server opens in the repository, as Binder's do (the spawner's working directory is the data's path):
  // set in /etc/jupyter, which every Jupyter reads, merged into what the base has there.
  out.push(
    `RUN mkdir -p ${WORK} /etc/jupyter && printf '%s\\n' ${ROOT_DIR_SCRIPT.map(quote).join(' ')} > ${WORK}/root_dir.py \\\n` +
      ` && python3 ${WORK}/root_dir.py ${quote(home)} && rm ${WORK}/root_dir.py`,
  );
  // Everything that does not depend on the repository's files comes before them, so that a commit that
  // changes notebooks only rebuilds from the copy on: the working directory, and the user when nothing after
  // the copy needs root.
  const rootAfterCopy = requirementsNeedRepository || environmentNeedsRepository || packageFile !== undefined;
  out.push(`WORKDIR ${home}`);
  if (!rootAfterCopy) out.push(`USER ${recipe.uid}:${recipe.gid}`);
  // The repository, whole, into the notebook user's home, owned by the system's user: after the environment.
  out.push(copyLine(`--chown=${recipe.uid}:${recipe.gid} `, ['.'], home));
  // pip writes into the repository as root here (an editable install's *.egg-info, build/, src/): handed to the
  // user, whose home it is, and only those files (a chown of every file would copy the repository into a layer).
  const handBack = ` \\\n && find . -xdev -user 0 -exec chown -h ${recipe.uid}:${recipe.gid} {} +`;
  if (environmentNeedsRepository) out.push(condaUpdate(quote(at('environment.yml'))) + handBack);
  if (requirementsNeedRepository) out.push(`RUN ${pip} -r ${quote(at('requirements.txt'))}${handBack}`);
  if (packageFile) {
    honoured.push(packageFile);
    // Built from a copy: pip writes build/ and *.egg-info beside the sources, which stay the user's own.
    out.push(`RUN mkdir -p ${WORK} && cp -a . ${WORK}/package && ${pip} ${WORK}/package && rm -rf ${WORK}/package`);
  }
  if (rootAfterCopy) out.push(`USER ${recipe.uid}:${recipe.gid}`);
  const postBuild = read('postBuild');
  if (postBuild !== undefined) {
    honoured.push(at('postBuild'));
    out.push(`RUN ${unixLines(postBuild, at('postBuild'))}chmod +x ${quote(at('postBuild'))} && ./${quote(at('postBuild'))}`);
  }
  const start = read('start');
  if (start !== undefined) {
    honoured.push(at('start'));
    const script = `${home.replace(/\/$/, '')}/${at('start')}`;
    out.push(`${START_COMMENT}${at('start')}`);
    out.push(`RUN ${unixLines(start, at('start'))}chmod +x ${quote(at('start'))}`);
    // The start script runs before the server's command and execs it; the base's own entrypoint stays first.
    out.push(`ENTRYPOINT ${JSON.stringify([...recipe.base.entrypoint, script])}`);
    // A new ENTRYPOINT clears the command: the base's is kept.
    if (recipe.base.cmd.length > 0) out.push(`CMD ${JSON.stringify(recipe.base.cmd)}`);
  }
  return { kind: 'written', dockerfile: `${out.join('\n')}\n`, honoured, start: start !== undefined ? at('start') : null };
}

/** How a written Dockerfile names its start script (the build page and the tile read it back: {@link startScriptOf}). */
const START_COMMENT = '# Runs at every server start, before the server: ';

/** The start script a Dockerfile written here names, or null. */
export function startScriptOf(dockerfile: string): string | null {
  const line = dockerfile.split('\n').find((l) => l.startsWith(START_COMMENT));
  return line ? line.slice(START_COMMENT.length) : null;
}

/** A reader over files in memory (tests, and anything that listed a repository already). */
export function repositoryInMemory(files: Record<string, string>): RepositoryReader {
  return {
    file: (path) => files[path],
    isDirectory: (path) => Object.keys(files).some((name) => name.startsWith(`${path}/`)),
  };
}
