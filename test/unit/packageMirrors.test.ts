/** A system's package mirrors as the admin sets them (form, API, seed): what is kept, what is refused in words. */
import { describe, expect, it } from 'vitest';
import { SystemInputSchema } from '../../server/systems/service.js';

const system = { slug: 'x', displayName: 'X', allowedRegistries: '*', defaultMountPath: '/home/jovyan/work', buildNetwork: 'host' };

describe('package mirrors of a system', () => {
  it('keeps the pip index, extra index, conda channels and apt sources', () => {
    const parsed = SystemInputSchema.parse({
      ...system,
      buildPipIndexUrl: 'https://pypi.example.org/simple',
      buildPipExtraIndexUrl: 'http://10.0.0.5:8080/simple',
      buildCondaChannels: 'https://conda.example.org/conda-forge\nhttps://conda.example.org/bioconda',
      buildAptSources: 'deb [trusted=yes] http://apt.example.org/debian bookworm main',
    });
    expect(parsed.build.mirrors).toEqual({
      pipIndexUrl: 'https://pypi.example.org/simple',
      pipExtraIndexUrl: 'http://10.0.0.5:8080/simple',
      condaChannels: ['https://conda.example.org/conda-forge', 'https://conda.example.org/bioconda'],
      aptSources: ['deb [trusted=yes] http://apt.example.org/debian bookworm main'],
    });
    expect(SystemInputSchema.parse(system).build.mirrors).toBeUndefined();
  });

  it.each([
    [{ buildPipIndexUrl: 'https://user:secret@pypi.example.org/simple' }, 'buildPipIndexUrl', /carries no credentials/],
    [{ buildPipIndexUrl: 'pypi.example.org' }, 'buildPipIndexUrl', /is not a URL/],
    [{ buildCondaChannels: 'ftp://conda.example.org/x' }, 'buildCondaChannels', /over http or https/],
    [{ buildAptSources: 'http://apt.example.org/debian bookworm' }, 'buildAptSources', /is not an apt source/],
    [
      { buildNetwork: 'none', buildPipIndexUrl: 'https://pypi.example.org/simple' },
      'buildPipIndexUrl',
      /no network \(none\), so they cannot reach a mirror/,
    ],
  ])('refuses %j in %s, in words', (fields, field, message) => {
    const result = SystemInputSchema.safeParse({ ...system, ...fields });
    expect(result.success).toBe(false);
    expect(result.error?.issues.find((i) => i.path[0] === field)?.message).toMatch(message);
  });
});
