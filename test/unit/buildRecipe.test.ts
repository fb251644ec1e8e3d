/** The pure parts of building: what a Dockerfile pulls, package lists, the written Dockerfile, names, progress and failures. */
import { describe, expect, it } from 'vitest';
import { dockerfileImages } from '../../server/builds/dockerfile.js';
import { buildFailureMessage } from '../../server/builds/failure.js';
import { aptPackages, environmentProblems, packagesDockerfile, requirementProblems } from '../../server/builds/packages.js';
import { buildLabel } from '../../server/images/status.js';
import type { BuildSummary } from '../../server/builds/store.js';
import { BuildProgress } from '../../server/runner/dockerBuilder.js';
import { SystemInputSchema } from '../../server/systems/service.js';

describe('the images a Dockerfile pulls', () => {
  it('names each FROM and COPY --from image once, not stages, scratch or stage indexes', () => {
    const parsed = dockerfileImages(
      [
        '# syntax comment',
        'ARG BASE=quay.io/jupyter/base-notebook',
        'ARG TAG=2024-05-27',
        'FROM --platform=linux/amd64 ${BASE}:${TAG} AS build',
        'RUN echo \\',
        '  continued',
        'FROM scratch AS empty',
        'FROM build',
        'COPY --from=build /a /a',
        'COPY --from=0 /b /b',
        'COPY --from=registry.example.org/tools/helper:1 /bin/helper /bin/helper',
      ].join('\n'),
    );
    expect(parsed.problems).toEqual([]);
    expect(parsed.images).toEqual([
      { image: 'quay.io/jupyter/base-notebook:2024-05-27', line: 4, kind: 'from', stages: [] },
      { image: 'registry.example.org/tools/helper:1', line: 11, kind: 'copy' },
    ]);
  });

  it('refuses a FROM with an argument that has no default, and a file without FROM', () => {
    expect(dockerfileImages('ARG BASE\nFROM $BASE\n').problems).toEqual([
      "Line 2: FROM $BASE uses a build argument without a default; write the image's name",
    ]);
    expect(dockerfileImages('RUN echo hi\n').problems[0]).toMatch(/has no FROM line/);
  });

  it('reads lines continued with the escape character a parser directive sets', () => {
    const parsed = dockerfileImages('# escape=`\nFROM `\n  python:3.12\n');
    expect(parsed.images).toEqual([{ image: 'python:3.12', line: 2, kind: 'from', stages: [] }]);
  });
});

describe('package lists', () => {
  it('accepts what pip reads in a requirements file', () => {
    const good = [
      'numpy==1.26.4',
      'pandas>=2,<3',
      'requests[socks] ~= 2.31',
      'torch ; platform_machine == "x86_64"',
      'mypkg @ https://example.org/mypkg-1.0.tar.gz',
      '--extra-index-url https://pypi.example.org/simple',
      '--no-index',
      '  # a comment',
      'scipy  # trailing comment',
      'git+https://github.com/lab/tool.git@v1.2#egg=tool',
      'https://example.org/wheels/extra-1.0-py3-none-any.whl',
      '# pip-compile --generate-hashes output:',
      'attrs==23.2.0 \\',
      '    --hash=sha256:935dc3b529c262f6cf76e50877d35a4bd3c1de194fd41f47a2b7ae8f19971f30 \\',
      '    --hash=sha256:99b87a485a5820b23b879f04c2305b44b951b502fd64be915879d77a7e8fc6f1',
      '    # via -r requirements.in',
      '',
    ].join('\n');
    expect(requirementProblems(good)).toEqual([]);
  });

  it('counts lines from the first line of a continued requirement', () => {
    expect(requirementProblems('numpy \\\n  ==1.26\nnot a package\n')).toEqual([
      'Line 3: "not a package" is not a requirement; write a package name with an optional version, e.g. numpy==1.26.4 or pandas>=2',
    ]);
  });

  it('names the line of what pip would not read, and options that refer to other files', () => {
    expect(requirementProblems('numpy\nnumpy>=>1\n-e git+https://x/y.git\n')).toEqual([
      'Line 2: "numpy>=>1" is not a requirement; write a package name with an optional version, e.g. numpy==1.26.4 or pandas>=2',
      'Line 3: "-e git+https://x/y.git" is not an option a build can use (-e refers to other files or checkouts); list the packages themselves',
    ]);
  });

  it('takes apt names and versions, refuses shell', () => {
    expect(aptPackages('libgdal-dev, graphviz\ngit=1:2.39.2-1')).toEqual({
      packages: ['libgdal-dev', 'graphviz', 'git=1:2.39.2-1'],
      problems: [],
    });
    expect(aptPackages('git;rm -rf /').problems).toHaveLength(1);
    expect(aptPackages('libc6:i386').problems).toEqual([]);
  });

  it('wants an environment.yml with dependencies', () => {
    expect(environmentProblems('channels: [conda-forge]\ndependencies:\n  - xarray=2024.3\n')).toEqual([]);
    expect(environmentProblems('- just a list')[0]).toMatch(/is a mapping with "dependencies:"/);
    expect(environmentProblems('dependencies: [')[0]).toMatch(/not valid YAML/);
    expect(environmentProblems('')).toEqual([]);
  });
});

describe('the Dockerfile written for packages', () => {
  it('installs apt, conda and pip as root from the uploads, then switches to the notebook user', () => {
    const text = packagesDockerfile({
      base: 'quay.io/jupyter/scipy-notebook:2024-05-27',
      pip: "ci-greeting==1.0\n# not this\nit's==1\nattrs==23.2.0 \\\n    --hash=sha256:abc  # via x\n",
      conda: 'dependencies:\n  - xarray\n',
      apt: ['graphviz'],
      files: ['ci greeting.whl'],
    });
    const lines = text.split('\n');
    expect(lines[1]).toBe('FROM quay.io/jupyter/scipy-notebook:2024-05-27');
    expect(lines[2]).toBe('USER root');
    expect(text).toContain('apt-get install -y --no-install-recommends graphviz');
    expect(text).toContain('COPY ["ci greeting.whl","/tmp/custom-images/files/"]');
    expect(text).toContain("'it'\\''s==1'");
    expect(text).not.toContain('not this');
    // Written as checked: a continued requirement on one line, its comment gone.
    expect(text).toContain("'attrs==23.2.0 --hash=sha256:abc'");
    expect(text).not.toContain('via x');
    expect(text).toContain('conda env update -n base -f /tmp/custom-images/environment.yml');
    expect(text).toContain(
      'python3 -m pip install --no-cache-dir --find-links /tmp/custom-images/files -r /tmp/custom-images/requirements.txt',
    );
    expect(lines.at(-2)).toBe('USER ${NB_UID:-1000}');
    // The instructions the service itself pulls: only the base.
    expect(dockerfileImages(text).images.map((i) => i.image)).toEqual(['quay.io/jupyter/scipy-notebook:2024-05-27']);
  });
});

describe('names and progress', () => {
  it("counts the researcher's steps: the LABEL added after each FROM is neither shown nor counted", () => {
    const progress = new BuildProgress({ marker: 'secret0', added: 2 });
    const output = [
      'Step 1/6 : FROM base AS build',
      ' ---> 0123456789ab',
      'Step 2/6 : LABEL custom-images.layers=secret0',
      ' ---> Running in 1234567890ab',
      'Removing intermediate container 1234567890ab',
      ' ---> 1111111111aa',
      'Step 3/6 : RUN make',
      ' ---> Using cache',
      ' ---> 2222222222aa',
      'Step 4/6 : FROM base',
      ' ---> 0123456789ab',
      'Step 5/6 : LABEL custom-images.layers=secret0',
      ' ---> 3333333333aa',
      'Step 6/6 : COPY --from=build /out /out',
      'echo secret0',
    ];
    const read = output.map((l) => progress.line(l));
    expect(read.flatMap((r) => (r.started ? [r.started] : []))).toEqual([
      { step: 1, steps: 4, instruction: 'FROM base AS build' },
      { step: 2, steps: 4, instruction: 'RUN make' },
      { step: 3, steps: 4, instruction: 'FROM base' },
      { step: 4, steps: 4, instruction: 'COPY --from=build /out /out' },
    ]);
    expect(read.flatMap((r) => (r.shown === undefined ? [] : [r.shown]))).toEqual([
      'Step 1/4 : FROM base AS build',
      ' ---> 0123456789ab',
      'Step 2/4 : RUN make',
      ' ---> Using cache',
      ' ---> 2222222222aa',
      'Step 3/4 : FROM base',
      ' ---> 0123456789ab',
      'Step 4/4 : COPY --from=build /out /out',
      'echo …',
    ]);
    // The output kept for a failure's words is the last step's, not the build's.
    expect(progress.stepOutput).toBe('echo …\n');
  });

  it('says what a build is doing, in the words of its tile', () => {
    const build = { status: 'running', phase: 'building', step: 2, steps: 5, number: 3 } as BuildSummary;
    expect(buildLabel(build)).toBe('Building (step 2 of 5)');
    expect(buildLabel({ ...build, phase: 'pushing' })).toBe('Pushing');
    expect(buildLabel({ ...build, status: 'failed' })).toBe('Build failed at step 2');
    expect(buildLabel({ ...build, status: 'succeeded' })).toBe('Built');
    expect(buildLabel({ ...build, status: 'queued' })).toBe('Build queued');
  });
});

describe('why a build failed, in words', () => {
  const limits = { timeoutMs: 1_800_000, memoryBytes: 4096 * 1024 * 1024, diskBytes: 20e9, imageBytes: 32e9 };
  const failed = (instruction: string, code: number, stepOutput = '') => ({
    ok: false as const,
    step: 4,
    steps: 6,
    instruction,
    reason: `The command '/bin/sh -c ${instruction.slice(4)}' returned a non-zero code: ${code}`,
    stepOutput,
  });

  it('names the step and the time limit of a build that ran out of time', () => {
    expect(buildFailureMessage(failed('RUN make', 137), true, 'default', limits)).toBe(
      'The build took longer than 30 minutes and was stopped at step 4 of 6 (RUN make). Build fewer packages at once, or ask the hub admin for a longer time limit.',
    );
  });

  it('names the limit a build wrote past, or the size its image went past', () => {
    expect(buildFailureMessage({ ...failed('RUN dd', 137), tooLarge: { what: 'disk', bytes: 21.5e9 } }, false, 'default', limits)).toBe(
      "The build wrote more than the 20.0 GB a build may write to the engine's disk (21.5 GB when it was measured) and was stopped at step 4 of 6 (RUN dd); what it wrote was removed. Remove downloads and caches in the RUN step that makes them, or ask the hub admin for a larger limit.",
    );
    expect(buildFailureMessage({ ...failed('RUN dd', 0), tooLarge: { what: 'image', bytes: 40e9 } }, false, 'default', limits)).toMatch(
      /^The built image is 40\.0 GB, more than the 32\.0 GB an image built here may have \(its base image included\); it was not pushed/,
    );
  });

  it("reads a step killed with SIGKILL as out of memory, and names the step's memory", () => {
    const message = buildFailureMessage(failed('RUN pip install torch', 137), false, 'default', limits);
    expect(message).toMatch(/^Build failed at step 4 of 6 \(RUN pip install torch\): The command .* returned a non-zero code: 137\./);
    expect(message).toMatch(/killed, most likely for using more than the 4096 MiB of memory a build step has/);
    expect(buildFailureMessage(failed('RUN pip install torch', 1), false, 'default', limits)).not.toMatch(/memory/);
  });

  it.each([
    'sh: 1: Cannot fork',
    '/bin/bash: fork: retry: Resource temporarily unavailable',
    "/bin/sh: can't fork: Resource temporarily unavailable",
    "RuntimeError: can't start new thread",
    'BlockingIOError: [Errno 11] Resource temporarily unavailable',
    'pthread_create failed: Resource temporarily unavailable',
    // Processes refused at once write their messages into one another's lines (dash writes the newline apart).
    '/bin/sh: 0: /bin/sh: 1: Cannot forkCannot fork',
    '/bin/bash: line 1: fork: retry: Resource temporarily unavailablefork: retry: Resource temporarily unavailable',
  ])('reads "%s" as the limit on processes', (line) => {
    const message = buildFailureMessage(failed('RUN make -j', 2, `cc -c a.c\n${line}\n`), false, 'default', limits);
    expect(message).toMatch(/started more processes than a build step may run at once/);
  });

  it('explains a failed RUN on a system without a network, and nothing else elsewhere', () => {
    const offline = buildFailureMessage(failed('RUN pip install numpy', 1, 'Network is unreachable\n'), false, 'none', limits);
    expect(offline).toMatch(/This system builds without a network/);
    expect(buildFailureMessage(failed('RUN pip install numpy', 1), false, 'default', limits)).toBe(
      "Build failed at step 4 of 6 (RUN pip install numpy): The command '/bin/sh -c pip install numpy' returned a non-zero code: 1.",
    );
  });
});

describe("a system's build settings (admin form and seed files)", () => {
  const system = { slug: 'b', displayName: 'B', allowedRegistries: 'registry.example.org/*', defaultMountPath: '/home/jovyan/work' };

  it('takes a pasted push path, the network and "Name = image" base lines', () => {
    const parsed = SystemInputSchema.parse({
      ...system,
      buildEnabled: 'on',
      buildPushTo: 'https://registry.example.org/custom-images/',
      buildNetwork: 'none',
      buildBaseImages: 'SciPy = quay.io/jupyter/scipy-notebook:2024-05-27\nregistry.example.org/base:1',
    });
    expect(parsed.build).toEqual({
      enabled: true,
      pushTo: 'registry.example.org/custom-images',
      network: 'none',
      baseImages: [
        { name: 'SciPy', image: 'quay.io/jupyter/scipy-notebook:2024-05-27' },
        { name: 'registry.example.org/base:1', image: 'registry.example.org/base:1' },
      ],
    });
  });

  it.each([
    [{ buildEnabled: 'on' }, 'buildPushTo', /Enter the registry path built images are pushed to/],
    [{ buildEnabled: 'on', buildPushTo: 'other.example.org/built' }, 'buildPushTo', /which the allowed registries must include/],
    [{ buildPushTo: 'custom-images' }, 'buildPushTo', /must start with the registry's host/],
    [{ buildNetwork: 'bridge0' }, 'buildNetwork', /default, none or host/],
    [{ buildBaseImages: 'Bad = not a reference!' }, 'buildBaseImages', /^Bad = not a reference!: /],
    // Room for the user's part and the image's name within 255 characters.
    [{ buildPushTo: `registry.example.org/${'p'.repeat(69)}` }, 'buildPushTo', /at most 89 characters/],
    // A base image there would be some user's build, which that user can overwrite.
    [
      { buildPushTo: 'registry.example.org/built', buildBaseImages: 'Base = registry.example.org/built/base/debian:1' },
      'buildBaseImages',
      /not kept under the push path registry\.example\.org\/built/,
    ],
  ])('refuses %j in %s', (fields, field, message) => {
    const result = SystemInputSchema.safeParse({ ...system, ...fields });
    expect(result.success).toBe(false);
    expect(result.error?.issues.find((i) => i.path[0] === field)?.message).toMatch(message);
  });
});
