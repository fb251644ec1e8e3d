/**
 * What a stranger's link and repository cannot do (an attack on #24 tried
 * them): a urlpath that leaves the visitor's server, and repository files
 * that try to write Dockerfile instructions or shell into the Dockerfile
 * the service writes.
 */
import { describe, expect, it } from 'vitest';
import { dockerfileProblems, instructions } from '../../server/builds/dockerfile.js';
import { repositoryBuild, repositoryInMemory, type RepositoryRecipe } from '../../server/builds/repo2docker.js';
import { checkUrlpath, landingPath } from '../../server/links/link.js';

const recipe: RepositoryRecipe = {
  base: { image: 'registry.example.org/bases/debian-jupyterhub:1', entrypoint: [], cmd: ['jupyterhub-singleuser'], env: [] },
  uid: 1000,
  gid: 100,
  home: '/home/jovyan',
};

describe('urlpath stays inside the server', () => {
  it.each([
    '//evil.example',
    '/\\evil.example',
    '\\\\evil.example',
    '%2F%2Fevil.example',
    '/%2F/evil.example',
    '..%2Fbob',
    '%2e%2e/bob',
    '.%2E/bob',
    'lab/../../bob',
    'lab/%2e%2e/%2e%2e/hub/admin',
    'https:evil.example',
    'javascript:alert(1)',
    'lab\tx',
    'lab%0a',
    'ｌab/．．/bob',
  ])('refuses %j', (urlpath) => {
    expect(checkUrlpath(urlpath).ok).toBe(false);
  });

  it('keeps what it accepts under /user/NAME/', () => {
    for (const urlpath of ['lab/tree/a.ipynb', '/lab?reset', 'voila/render/x.ipynb', 'lab/%252e%252e/x']) {
      const checked = checkUrlpath(urlpath);
      expect(checked.ok).toBe(true);
      if (checked.ok) expect(new URL(landingPath('/', 'ada', checked.path), 'https://hub.example').pathname).toMatch(/^\/user\/ada\//);
    }
  });
});

describe('repository files write nothing into the Dockerfile but package names', () => {
  it.each([
    ['apt.txt', 'curl\n-o APT::Get::AllowUnauthenticated=true\n'],
    ['apt.txt', 'curl --allow-unauthenticated\n'],
    ['apt.txt', 'curl $(id)\n'],
    ['apt.txt', 'curl \\\nRUN id\n'],
    ['apt.txt', 'curl;id\n'],
    ['runtime.txt', 'python-3.11\nRUN id\n'],
    ['runtime.txt', "python-3.11'; id; '\n"],
    ['environment.yml', 'dependencies: [\n'],
  ])('%s %j is refused', (file, text) => {
    const build = repositoryBuild(repositoryInMemory({ [file]: text }), {
      ...recipe,
      base: { ...recipe.base, env: ['CONDA_DIR=/opt/conda'] },
    });
    expect(build.kind).toBe('refused');
  });

  it('a requirements.txt is copied, never inlined: its lines do not become instructions', () => {
    const build = repositoryBuild(repositoryInMemory({ 'requirements.txt': 'numpy\nRUN id\n' }), recipe);
    expect(build.kind).toBe('refused');
    const local = repositoryBuild(repositoryInMemory({ 'requirements.txt': '-r more.txt\n', 'more.txt': 'x\n\nRUN id\n' }), recipe);
    expect(local.kind).toBe('written');
    if (local.kind === 'written') {
      expect(instructions(local.dockerfile).filter((i) => i.keyword === 'RUN' && i.values.join(' ').includes('RUN id'))).toEqual([]);
      expect(
        dockerfileProblems(local.dockerfile, { allowedRegistries: ['registry.example.org/*'], systemName: 'T', maxBytes: 65536 }),
      ).toEqual([]);
    }
  });
});
