/**
 * The Dockerfile written for a repository without one, by repo2docker's rules,
 * held to repo2docker's own test layouts (tests/venv/, tests/base/,
 * tests/conda/ of jupyterhub/repo2docker): which files are honoured, in
 * which order the layers come, what is refused and how it is said.
 */
import { describe, expect, it } from 'vitest';
import { dockerfileProblems, instructions } from '../../server/builds/dockerfile.js';
import {
  repositoryBuild,
  repositoryInMemory,
  runtimePython,
  type BaseFacts,
  type RepositoryRecipe,
} from '../../server/builds/repo2docker.js';

const base: BaseFacts = {
  image: 'registry.example.org/bases/debian-jupyterhub:1',
  entrypoint: [],
  cmd: ['jupyterhub-singleuser'],
  env: ['PATH=/usr/local/bin:/usr/bin:/bin'],
};
const recipe: RepositoryRecipe = { base, uid: 1000, gid: 100, home: '/home/jovyan' };
const rules = { allowedRegistries: ['registry.example.org/*'], systemName: 'Test', maxBytes: 64 * 1024 };

function written(files: Record<string, string>, overrides: Partial<RepositoryRecipe> = {}) {
  const build = repositoryBuild(repositoryInMemory(files), { ...recipe, ...overrides });
  if (build.kind !== 'written') throw new Error(`expected a written Dockerfile, got ${JSON.stringify(build)}`);
  expect(dockerfileProblems(build.dockerfile, rules)).toEqual([]);
  return build;
}

/** The instructions as `KEYWORD flags values`, to assert their order. */
function steps(dockerfile: string): string[] {
  return instructions(dockerfile).map((i) => [i.keyword, ...i.flags, ...i.values].join(' '));
}

function refused(files: Record<string, string>, overrides: Partial<RepositoryRecipe> = {}): string[] {
  const build = repositoryBuild(repositoryInMemory(files), { ...recipe, ...overrides });
  if (build.kind !== 'refused') throw new Error(`expected a refusal, got ${build.kind}`);
  return build.problems;
}

describe("repo2docker's layouts", () => {
  it('requirements.txt alone (tests/venv/simple): installed before the repository is copied', () => {
    const build = written({ 'requirements.txt': 'numpy==1.26.4\n', 'index.ipynb': '{}' });
    expect(build.honoured).toEqual(['requirements.txt']);
    const order = steps(build.dockerfile);
    const install = order.findIndex((s) => s.includes('pip install') && s.includes('/tmp/custom-images/requirements.txt'));
    const copy = order.findIndex((s) => s.startsWith('COPY --chown=1000:100'));
    expect(install).toBeGreaterThan(0);
    expect(copy).toBeGreaterThan(install);
    expect(build.dockerfile).toContain('COPY --chown=1000:100 [".","/home/jovyan"]');
    // Nothing after the copy: a commit that changes notebooks only rebuilds from there.
    expect(order.at(-1)).toBe('COPY --chown=1000:100 . /home/jovyan');
    expect(order.slice(-3, -1)).toEqual(['WORKDIR /home/jovyan', 'USER 1000:100']);
    expect(build.start).toBeNull();
  });

  it('binder/ takes precedence (tests/venv/binder-dir): top-level files are ignored, the repository still copied whole', () => {
    const build = written({
      'requirements.txt': 'this line is not read\n',
      'apt.txt': 'NOT A PACKAGE\n',
      'binder/requirements.txt': 'pandas>=2\n',
      'notebook.ipynb': '{}',
    });
    expect(build.honoured).toEqual(['binder/requirements.txt']);
    expect(build.dockerfile).toContain('COPY ["binder/requirements.txt","/tmp/custom-images/requirements.txt"]');
    expect(build.dockerfile).not.toContain('apt-get');
  });

  it('.binder/ works as binder/ does; both at once are refused', () => {
    expect(written({ '.binder/requirements.txt': 'numpy\n' }).honoured).toEqual(['.binder/requirements.txt']);
    expect(refused({ 'binder/requirements.txt': 'numpy\n', '.binder/requirements.txt': 'numpy\n' })).toEqual([
      'The repository has both binder/ and .binder/: keep one of them (repo2docker refuses both, too)',
    ]);
  });

  it('a Dockerfile in binder/ wins over everything (tests/dockerfile/binder-dir)', () => {
    const build = repositoryBuild(
      repositoryInMemory({ 'binder/Dockerfile': 'FROM x\n', 'binder/requirements.txt': 'numpy\n', Dockerfile: 'FROM top\n' }),
      recipe,
    );
    expect(build).toEqual({ kind: 'dockerfile', path: 'binder/Dockerfile', text: 'FROM x\n' });
  });

  it('apt.txt + postBuild (tests/venv/apt-packages, tests/venv/postBuild): apt as root first, postBuild as the user last', () => {
    const build = written({ 'apt.txt': '# tools\nhello\ncowsay  # comment\n', postBuild: '#!/bin/sh\ntouch ~/built\n' });
    expect(build.honoured).toEqual(['apt.txt', 'postBuild']);
    const order = steps(build.dockerfile);
    expect(order.findIndex((s) => s.includes('apt-get install'))).toBeLessThan(order.findIndex((s) => s.startsWith('COPY')));
    expect(build.dockerfile).toContain('--no-install-recommends hello cowsay');
    expect(order.slice(-3)).toEqual(['USER 1000:100', 'COPY --chown=1000:100 . /home/jovyan', "RUN chmod +x 'postBuild' && ./'postBuild'"]);
  });

  it('setup.py (tests/venv/setup-py): installed as a package after requirements.txt, from a copy of the repository', () => {
    const build = written({ 'setup.py': 'from setuptools import setup\nsetup(name="mypkg")\n', 'requirements.txt': 'numpy\n' });
    expect(build.honoured).toEqual(['requirements.txt', 'setup.py']);
    expect(build.dockerfile).toContain('cp -a . /tmp/custom-images/package && PIP_BREAK_SYSTEM_PACKAGES=1');
    // pyproject.toml (tests/pyproject/pyproject-toml): a package with both tables; tool settings alone are none.
    const pyproject =
      '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n[project]\nname = "mwt"\nversion = "1.0.0"\n';
    expect(written({ 'pyproject.toml': pyproject }).honoured).toEqual(['pyproject.toml']);
    expect(written({ 'pyproject.toml': '[tool.black]\nline-length = 100\n', 'requirements.txt': 'numpy\n' }).honoured).toEqual([
      'requirements.txt',
    ]);
    expect(written({ 'pyproject.toml': '[project]\nname = "x"\n' }).honoured).toEqual([]);
    expect(refused({ 'pyproject.toml': '[project\nname = "x"\n' })[0]).toMatch(/^pyproject\.toml is not valid TOML: /);
    // With a binder folder repo2docker leaves setup.py alone.
    expect(written({ 'setup.py': 'x', 'binder/requirements.txt': 'numpy\n' }).honoured).toEqual(['binder/requirements.txt']);
  });

  it('requirements that name repository files (-r, -e .) are installed after the copy', () => {
    const build = written({ 'requirements.txt': '-r more.txt\n-e .\nnumpy\n', 'more.txt': 'pandas\n', 'setup.py': 'x' });
    const order = steps(build.dockerfile);
    const copy = order.findIndex((s) => s.startsWith('COPY --chown'));
    expect(order.findIndex((s) => s.includes("-r 'requirements.txt'"))).toBeGreaterThan(copy);
    // What pip writes into the repository as root (an editable install's *.egg-info) is handed to the user.
    expect(order.find((s) => s.includes("-r 'requirements.txt'"))).toMatch(/&& find \. -xdev -user 0 -exec chown -h 1000:100 \{\} \+$/);
  });

  // repo2docker's tests/unit/test_utils.py (is_local_pip_requirement), and pip's attached short options.
  it.each([
    ['-r requirements.txt', true],
    ['-rother.txt', true],
    ['-c constraints.txt', true],
    ['-e .', true],
    ['--editable=./pkg', true],
    ['./local/wheel.whl', true],
    ['file:///home/jovyan/pkg', true],
    ['git+file://./pkg', true],
    ['numpy==1.26 # -e .', false],
    ['git+https://github.com/jupyterhub/repo2docker', false],
    ['mypkg @ file:///home/jovyan/mypkg', true],
    ['pandas>=2', false],
  ])('"%s" waits for the repository: %s', (line, local) => {
    const order = steps(written({ 'requirements.txt': `${line}\n`, 'other.txt': 'numpy\n' }).dockerfile);
    const copy = order.findIndex((s) => s.startsWith('COPY --chown'));
    const install = order.findIndex((s) => s.includes('pip install'));
    expect(install > copy).toBe(local);
  });

  it('takes a hash-checked requirements.txt (pip-compile --generate-hashes)', () => {
    const hash = `sha256:${'a'.repeat(64)}`;
    expect(written({ 'requirements.txt': `--require-hashes\nnumpy==1.26.4 --hash=${hash}\n` }).honoured).toEqual(['requirements.txt']);
  });

  it('runtime.txt python-X.Y[.Z]: checked first against the base Python; a declared other version is refused before any step', () => {
    const build = written({ 'runtime.txt': 'python-3.11\n', 'requirements.txt': 'numpy\n' });
    expect(steps(build.dockerfile)[3]).toContain('sys.version_info[:2] == (3, 11)');
    const official = { ...base, env: [...base.env, 'PYTHON_VERSION=3.12.4'] };
    expect(refused({ 'runtime.txt': 'python-3.9' }, { base: official })).toEqual([
      'runtime.txt asks for Python 3.9, but the base image registry.example.org/bases/debian-jupyterhub:1 has Python 3.12; choose a base image with Python 3.9',
    ]);
    expect(written({ 'runtime.txt': 'python-3.12.1' }, { base: official }).honoured).toEqual(['runtime.txt']);
  });

  it.each([
    ['python-3.10', { version: '3.10' }],
    ['python-3.7.2', { version: '3.7' }],
    // tests/venv/py3: the major version alone, any Python 3.
    ['python-3', { version: '3' }],
    [' python-3.11 \r\n', { version: '3.11' }],
    ['r-4.3-2023-10-01', { problem: expect.stringContaining('asks for R') }],
    ['python3.10', { problem: expect.stringContaining('write python-X.Y or python-X.Y.Z') }],
  ])('runtime.txt %s', (text, expected) => {
    expect(runtimePython(text, 'runtime.txt')).toEqual(expected);
  });

  it('runtime.txt python-3 (tests/venv/py3): any Python 3, checked by its major version', () => {
    expect(written({ 'runtime.txt': 'python-3\n' }).dockerfile).toContain('sys.version_info[:1] == (3,)');
    const official = { ...base, env: [...base.env, 'PYTHON_VERSION=3.12.4'] };
    expect(written({ 'runtime.txt': 'python-3' }, { base: official }).honoured).toEqual(['runtime.txt']);
    expect(refused({ 'runtime.txt': 'python-2' }, { base: official })[0]).toMatch(
      /asks for Python 2, but the base image .* has Python 3\.12/,
    );
  });

  it('postBuild and start written on Windows (tests/venv/newline-conversion): their line ends made Unix ones before they run', () => {
    const build = written({ postBuild: '#!/bin/bash\r\necho hello > hello.txt\r\n', start: '#!/bin/bash\r\nexec "$@"\r\n' });
    expect(steps(build.dockerfile).find((s) => s.includes("./'postBuild'"))).toBe(
      "RUN sed -i 's/\\r$//' 'postBuild' && chmod +x 'postBuild' && ./'postBuild'",
    );
    expect(build.dockerfile).toContain("RUN sed -i 's/\\r$//' 'start' && chmod +x 'start'");
    expect(written({ postBuild: '#!/bin/bash\necho hi\n' }).dockerfile).not.toContain('sed -i');
  });

  it('start (tests/base/start): made executable, the entrypoint after the base one, the command kept', () => {
    const build = written(
      { 'binder/start': '#!/bin/bash\nexport TEST_START_VAR="var is set"\nexec "$@"\n', 'binder/requirements.txt': 'numpy\n' },
      { base: { ...base, entrypoint: ['tini', '--'] } },
    );
    expect(build.start).toBe('binder/start');
    expect(build.dockerfile).toContain('ENTRYPOINT ["tini","--","/home/jovyan/binder/start"]');
    expect(build.dockerfile).toContain('CMD ["jupyterhub-singleuser"]');
  });

  it('environment.yml on a base without conda is refused in words; with conda it is installed, with the site channels', () => {
    expect(refused({ 'environment.yml': 'dependencies:\n  - numpy\n' })).toEqual([
      'environment.yml needs conda, and the base image registry.example.org/bases/debian-jupyterhub:1 has neither conda nor mamba; choose a base image with conda, or list the packages in requirements.txt',
    ]);
    const conda = { ...base, env: ['CONDA_DIR=/opt/conda', 'PATH=/opt/conda/bin:/usr/bin'] };
    const build = written(
      { 'environment.yml': 'dependencies:\n  - numpy\n' },
      { base: conda, mirrors: { condaChannels: ['http://mirror.example.org/conda-forge'] } },
    );
    expect(build.dockerfile).toContain('ENV CONDARC=/etc/custom-images.condarc');
    expect(build.dockerfile).toContain('mamba env update -n base -f /tmp/custom-images/environment.yml');
  });

  const conda: BaseFacts = { ...base, env: ['CONDA_DIR=/opt/conda', 'PATH=/opt/conda/bin:/usr/bin'] };

  it('environment.yml comes before requirements.txt, setup.py, Pipfile and a Python runtime.txt (tests/conda/py310-requirements-file)', () => {
    const build = written(
      {
        'environment.yml': 'dependencies:\n  - python=3.10\n  - numpy\n',
        'requirements.txt': 'there\n',
        'setup.py': 'x',
        Pipfile: '[packages]\n',
        'runtime.txt': 'python-3.9\n',
        'apt.txt': 'hello\n',
        postBuild: '#!/bin/bash\n',
      },
      { base: conda },
    );
    expect(build.honoured).toEqual(['apt.txt', 'environment.yml', 'postBuild']);
    expect(build.dockerfile).not.toMatch(/pip install|version_info/);
    expect(build.dockerfile).toContain(
      '# Not read, as repo2docker does not read them beside environment.yml: runtime.txt, Pipfile, requirements.txt, setup.py',
    );
    // An R runtime.txt still means R: repo2docker's R buildpack comes before its conda one.
    expect(refused({ 'environment.yml': 'dependencies:\n  - numpy\n', 'runtime.txt': 'r-2023-01-01' }, { base: conda })[0]).toMatch(
      /runtime\.txt asks for R/,
    );
  });

  it('an empty environment.yml (tests/conda/empty-environment-file) installs nothing and needs no conda, and still comes first', () => {
    for (const text of ['', '# nothing yet\n', 'name: example\n', 'dependencies: []\n']) {
      const build = written({ 'environment.yml': text, 'requirements.txt': 'numpy\n' });
      expect(build.honoured).toEqual([]);
      expect(build.dockerfile).not.toMatch(/env update|pip install/);
    }
    expect(refused({ 'environment.yml': '- numpy\n' })).toEqual([
      'environment.yml is a mapping with "dependencies:" (and optionally "channels:"), as conda env export writes it',
    ]);
  });

  it('environment.yml whose pip section names repository files (-e .) is installed after the copy, as repo2docker does', () => {
    const env = 'dependencies:\n  - pip\n  - pip:\n    - -e .\n';
    const order = steps(written({ 'environment.yml': env, 'setup.py': 'x' }, { base: conda }).dockerfile);
    const copy = order.findIndex((s) => s.startsWith('COPY --chown'));
    const update = order.findIndex((s) => s.includes("env update -n base -f 'environment.yml'"));
    expect(update).toBeGreaterThan(copy);
    expect(order[update]).toMatch(/&& find \. -xdev -user 0 -exec chown -h 1000:100 \{\} \+$/);
    expect(order.slice(update).some((s) => s.startsWith('USER 1000:100'))).toBe(true);
    expect(order.some((s) => s.includes('/tmp/custom-images/environment.yml'))).toBe(false);
  });

  it('reads an environment.yml of 60,000 keys (within the 256 KiB a file may have) once, without the quadratic check for repeated keys', () => {
    const keys = Array.from({ length: 60_000 }, (_, i) => i.toString(36)).join(',');
    const text = `{${keys}, dependencies: [numpy]}\n`;
    expect(text.length).toBeGreaterThan(200_000);
    expect(text.length).toBeLessThan(256 * 1024);
    expect(written({ 'environment.yml': text }, { base: conda }).honoured).toEqual(['environment.yml']);
  });

  it.each([
    [{ Pipfile: '[packages]\nthere = "*"\n', 'requirements.txt': 'numpy\n' }, 'Pipfile asks for pipenv'],
    [{ 'binder/Pipfile.lock': '{}' }, 'binder/Pipfile.lock asks for pipenv'],
  ])('a Pipfile (tests/pipfile) is refused in words, pipenv not being run here: %j', (files, words) => {
    expect(refused(files).join('\n')).toContain(words);
  });

  it('the site pip mirror goes in the environment of the build and of the servers', () => {
    const build = written(
      { 'requirements.txt': 'numpy\n' },
      { mirrors: { pipIndexUrl: 'http://127.0.0.1:8080/simple/', pipExtraIndexUrl: 'https://mirror.example.org/simple' } },
    );
    expect(build.dockerfile).toContain(
      "ENV REPO_DIR='/home/jovyan' PIP_INDEX_URL='http://127.0.0.1:8080/simple/' PIP_EXTRA_INDEX_URL='https://mirror.example.org/simple'",
    );
  });

  it('with the site apt sources, apt.txt is installed from them alone; the base keeps its own', () => {
    const build = written({ 'apt.txt': 'hello\n' }, { mirrors: { aptSources: ['deb [trusted=yes] http://127.0.0.1:9/ ./'] } });
    expect(build.dockerfile).toContain("printf '%s\\n' 'deb [trusted=yes] http://127.0.0.1:9/ ./' > /etc/apt/custom-images-site.list");
    const only = '-o Dir::Etc::SourceList=/etc/apt/custom-images-site.list -o Dir::Etc::SourceParts=/etc/apt/custom-images-site.list.d';
    expect(build.dockerfile).toContain(`apt-get update ${only}`);
    expect(build.dockerfile).toContain(`apt-get install ${only} -y --no-install-recommends hello`);
  });

  it.each([
    [{ 'install.R': 'install.packages("x")' }, 'install.R asks for R'],
    [{ DESCRIPTION: 'Package: x' }, 'DESCRIPTION asks for R'],
    [{ 'Project.toml': '[deps]' }, 'Project.toml asks for Julia'],
    [{ 'binder/Project.toml': '[deps]' }, 'binder/Project.toml asks for Julia'],
    [
      { 'requirements.txt': 'numpy\nthis is not a requirement\n' },
      'requirements.txt: Line 2: "this is not a requirement" is not a requirement',
    ],
    [{ 'apt.txt': 'Bad_Name\n' }, 'apt.txt: "Bad_Name" is not a package name'],
    // A line is a repository file by how it starts, not by what it holds further on.
    [
      { 'requirements.txt': 'not a requirement at all file://\n' },
      'requirements.txt: Line 1: "not a requirement at all file://" is not a requirement',
    ],
  ])('refused in words: %j', (files, words) => {
    expect(refused(files as Record<string, string>).join('\n')).toContain(words);
  });

  it('a repository with no configuration file still gets its files in the home', () => {
    const build = written({ 'index.ipynb': '{}' });
    expect(build.honoured).toEqual([]);
    expect(build.dockerfile).toContain('COPY --chown=1000:100 [".","/home/jovyan"]');
  });
});
