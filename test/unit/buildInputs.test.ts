/**
 * A build's inputs, one shape: a request's inputs as stored, a rebuild that
 * sends them again (the same inputs come out), the form's values, and stored
 * inputs from before a key existed. Pure: no database.
 */
import { describe, expect, it } from 'vitest';
import { BUILD_INPUT_KEYS, BuildInputsSchema, inputsAsRequest, inputsAsTyped, storedInputs } from '../../server/builds/inputs.js';
import { buildInputSchema, type BuildRecipe, type BuildSchemaContext } from '../../server/builds/recipe.js';
import { testSystem } from '../support/systems.js';

const system = testSystem({
  slug: 'lab',
  build: {
    enabled: true,
    pushTo: 'registry.example.org/built',
    network: 'none',
    baseImages: [{ name: 'SciPy', image: 'registry.example.org/base/scipy:1' }],
  },
});
const context: BuildSchemaContext = {
  systems: [system],
  files: [],
  limits: { dockerfileBytes: 64 * 1024, uploadBytes: 1024 * 1024, uploadFiles: 5 },
  gitHostTrusted: () => false,
};

function recipe(raw: Record<string, unknown>): BuildRecipe {
  return buildInputSchema(context).parse({ name: 'env', system: 'lab', ...raw });
}

describe('build inputs', () => {
  it.each([
    ['packages', { mode: 'packages', base: 'SciPy', pip: 'xarray==2024.3.0\n', apt: 'graphviz  libgdal-dev' }],
    ['a Dockerfile', { mode: 'dockerfile', dockerfile: 'FROM registry.example.org/base/scipy:1\nRUN true\n' }],
    ['a repository', { mode: 'dockerfile', gitUrl: 'https://git.example.org/lab/env.git', gitRef: 'v1.2', gitUsername: 'oauth2' }],
  ])('of %s come out the same when a rebuild sends them again', (_, raw) => {
    const first = recipe(raw).inputs;
    expect(recipe({ ...inputsAsRequest(first) }).inputs).toEqual(first);
  });

  it('are stored as the build ran them: the base image itself, normalised packages, the Dockerfile written for them', () => {
    const inputs = recipe({ mode: 'packages', base: 'SciPy', apt: 'graphviz  libgdal-dev', dockerfile: 'FROM elsewhere' }).inputs;
    expect(inputs).toMatchObject({ mode: 'packages', base: 'registry.example.org/base/scipy:1', apt: 'graphviz libgdal-dev', gitUrl: '' });
    expect(inputs.dockerfile).toContain('FROM registry.example.org/base/scipy:1');
    // Packages belong to the packages mode only.
    expect(recipe({ mode: 'dockerfile', dockerfile: 'FROM registry.example.org/base/scipy:1\n', pip: 'numpy' }).inputs.pip).toBe('');
  });

  it.each([
    ['packages, as they were', 'packages', undefined, 'packages', ''],
    ['packages, the written Dockerfile taken over', 'packages', 'dockerfile', 'dockerfile', 'FROM x\n'],
    ['a Dockerfile', 'dockerfile', undefined, 'dockerfile', 'FROM x\n'],
    ['a Dockerfile, asked as packages', 'dockerfile', 'packages', 'dockerfile', 'FROM x\n'],
  ] as const)('go back into a request or the form: %s', (_, mode, asked, expectedMode, expectedDockerfile) => {
    const stored = BuildInputsSchema.parse({ mode, dockerfile: 'FROM x\n', pip: 'numpy' });
    expect(inputsAsRequest(stored, asked)).toEqual({ ...stored, mode: expectedMode, dockerfile: expectedDockerfile });
  });

  it('read a stored build from before an input existed with that input blank', () => {
    const stored = { mode: 'dockerfile', dockerfile: 'FROM x\n' };
    const inputs = storedInputs(JSON.stringify(stored));
    expect(Object.keys(inputs).sort()).toEqual([...BUILD_INPUT_KEYS].sort());
    expect(inputs).toMatchObject({ ...stored, gitUrl: '', pip: '' });
    expect(storedInputs(stored)).toEqual(inputs);
  });

  it('show back what was typed, strings only', () => {
    expect(inputsAsTyped({ pip: 'numpy', gitUrl: 5, gitToken: 'secret', other: 'x' })).toEqual({
      ...Object.fromEntries(BUILD_INPUT_KEYS.map((k) => [k, ''])),
      pip: 'numpy',
    });
  });
});

describe("a system's git hosts", () => {
  const only = testSystem({ slug: 'lab', displayName: 'Lab', build: { ...system.build, gitHosts: ['git.example.org'] } });
  const onlyContext: BuildSchemaContext = { ...context, systems: [only] };
  const parse = (gitUrl: string) => buildInputSchema(onlyContext).safeParse({ name: 'env', system: 'lab', mode: 'dockerfile', gitUrl });

  it('builds from a host the system names, in any letter case', () => {
    expect(parse('https://GIT.example.org/lab/env').success).toBe(true);
  });

  it('refuses another host in words naming gitUrl', () => {
    const result = parse('https://github.com/lab/env');
    expect(result.success).toBe(false);
    expect(result.error?.issues).toEqual([
      expect.objectContaining({
        path: ['gitUrl'],
        message: 'Repositories on github.com are not allowed on Lab; this system builds from git.example.org',
      }),
    ]);
  });

  it('takes any host when the system names none', () => {
    expect(
      buildInputSchema(context).safeParse({ name: 'env', system: 'lab', mode: 'dockerfile', gitUrl: 'https://github.com/a/b' }).success,
    ).toBe(true);
  });
});
