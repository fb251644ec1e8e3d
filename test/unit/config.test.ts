import { describe, expect, it } from 'vitest';
import { ConfigError, configVariables, parseConfig } from '../../server/config.js';

const HUB_ENV = {
  JUPYTERHUB_API_URL: 'http://127.0.0.1:8081/hub/api',
  JUPYTERHUB_API_TOKEN: 'service-token',
  JUPYTERHUB_CLIENT_ID: 'service-custom-images',
  JUPYTERHUB_SERVICE_PREFIX: '/services/custom-images/',
  JUPYTERHUB_SERVICE_URL: 'http://127.0.0.1:10101',
  JUPYTERHUB_BASE_URL: '/',
};

function problems(env: Record<string, string | undefined>): string[] {
  try {
    parseConfig(env, '/srv');
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('parseConfig', () => {
  it('takes the environment a hub gives a managed service', () => {
    const config = parseConfig({ ...HUB_ENV, JUPYTERHUB_OAUTH_ACCESS_SCOPES: '["access:services!service=custom-images"]' }, '/srv');
    expect(config.service).toMatchObject({ host: '127.0.0.1', port: 10101, prefix: '/services/custom-images/' });
    expect(config.hub.oauthCallbackUrl).toBe('/services/custom-images/oauth_callback');
    expect(config.hub.accessScopes).toEqual(['access:services!service=custom-images']);
    expect(config.databaseUrl).toBe('sqlite:///srv/data/custom-images.sqlite');
    expect(config.service.secureCookies).toBe(false);
    expect(config.cryptKeys).toEqual([]);
  });

  it('waits 30 s for a silent registry unless told otherwise', () => {
    expect(parseConfig(HUB_ENV).registries.timeoutMs).toBe(30_000);
    expect(parseConfig({ ...HUB_ENV, CUSTOM_IMAGES_REGISTRY_TIMEOUT_SECONDS: '5' }).registries.timeoutMs).toBe(5_000);
  });

  it('takes a cgroup path or a systemd slice as the parent of build steps, and nothing when unset or blank', () => {
    const parent = (value?: string) => parseConfig({ ...HUB_ENV, CUSTOM_IMAGES_BUILD_CGROUP_PARENT: value }).builds.cgroupParent;
    expect(parent('/custom-images-build')).toBe('/custom-images-build');
    expect(parent('/hosts/builds.d/custom_images')).toBe('/hosts/builds.d/custom_images');
    expect(parent('custom-images-build.slice')).toBe('custom-images-build.slice');
    expect(parent('')).toBeUndefined();
    expect(parent()).toBeUndefined();
  });

  it("keeps temporary files under the data folder, and bounds a build's repository and context, unless told otherwise", () => {
    const config = parseConfig(HUB_ENV, '/srv');
    expect(config.workDir).toBe('/srv/data/work');
    expect(config.builds).toMatchObject({
      checkoutBytes: 512 * 1024 * 1024,
      checkoutFiles: 100_000,
      gitFileBytes: 16 * 1024 * 1024,
      gitMaxBytes: 32 * 1024 * 1024,
      contextBytes: 512 * 1024 * 1024,
    });
    const set = parseConfig(
      {
        ...HUB_ENV,
        CUSTOM_IMAGES_WORK_DIR: 'scratch',
        CUSTOM_IMAGES_BUILD_CHECKOUT_MAX_MB: '64',
        CUSTOM_IMAGES_BUILD_CONTEXT_MAX_MB: '32',
      },
      '/srv',
    );
    expect(set.workDir).toBe('/srv/scratch');
    expect(set.builds).toMatchObject({ checkoutBytes: 64 * 1024 * 1024, contextBytes: 32 * 1024 * 1024 });
  });

  it('maps the short forms of launch links to GitHub and GitLab unless told otherwise, and names a wrong entry', () => {
    expect([...parseConfig(HUB_ENV).links.hosts]).toEqual([
      ['gh', 'https://github.com'],
      ['gl', 'https://gitlab.com'],
    ]);
    const own = parseConfig({ ...HUB_ENV, CUSTOM_IMAGES_LINK_HOSTS: 'gh=https://github.com,gitea=https://git.example.org/' });
    expect(own.links.hosts.get('gitea')).toBe('https://git.example.org');
    expect(problems({ ...HUB_ENV, CUSTOM_IMAGES_LINK_HOSTS: 'gitea=git.example.org' })).toEqual([
      expect.stringMatching(/CUSTOM_IMAGES_LINK_HOSTS.*"gitea=git.example.org": the host is an origin/),
    ]);
  });

  it('marks cookies Secure when the public URL is https', () => {
    const config = parseConfig({ ...HUB_ENV, JUPYTERHUB_PUBLIC_URL: 'https://hub.example.org/' });
    expect(config.service.secureCookies).toBe(true);
  });

  it('reads several crypt keys separated by ";", the first one first', () => {
    const k1 = Buffer.alloc(32, 1).toString('base64');
    const k2 = Buffer.alloc(32, 2).toString('base64');
    const config = parseConfig({ ...HUB_ENV, CUSTOM_IMAGES_CRYPT_KEY: `${k1};${k2}` });
    expect(config.cryptKeys.map((k) => k[0])).toEqual([1, 2]);
  });

  it.each([
    [{ JUPYTERHUB_API_TOKEN: undefined }, /^JUPYTERHUB_API_TOKEN is required/],
    [{ JUPYTERHUB_API_TOKEN: '' }, /^JUPYTERHUB_API_TOKEN must not be empty/],
    [{ JUPYTERHUB_API_URL: undefined }, /^JUPYTERHUB_API_URL is required/],
    [{ JUPYTERHUB_API_URL: 'not a url' }, /^JUPYTERHUB_API_URL must be an http\(s\) URL/],
    [{ JUPYTERHUB_SERVICE_PREFIX: 'services/x' }, /^JUPYTERHUB_SERVICE_PREFIX must be a URL path/],
    [{ JUPYTERHUB_SERVICE_URL: 'ftp://x' }, /^JUPYTERHUB_SERVICE_URL must be an http\(s\) URL/],
    [{ CUSTOM_IMAGES_DATABASE_URL: 'mysql://x' }, /^CUSTOM_IMAGES_DATABASE_URL must be sqlite/],
    [{ CUSTOM_IMAGES_CRYPT_KEY: 'c2hvcnQ=' }, /^CUSTOM_IMAGES_CRYPT_KEY key 1 must be 32 bytes/],
    [{ CUSTOM_IMAGES_LOG_LEVEL: 'loud' }, /^CUSTOM_IMAGES_LOG_LEVEL must be one of/],
    [{ CUSTOM_IMAGES_SESSION_HOURS: '-1' }, /^CUSTOM_IMAGES_SESSION_HOURS must be a positive/],
    [{ JUPYTERHUB_OAUTH_ACCESS_SCOPES: 'access:services' }, /^JUPYTERHUB_OAUTH_ACCESS_SCOPES must be a JSON list/],
    [{ CUSTOM_IMAGES_REGISTRY_TIMEOUT_SECONDS: '0' }, /^CUSTOM_IMAGES_REGISTRY_TIMEOUT_SECONDS must be 1 or more/],
    [{ CUSTOM_IMAGES_REGISTRY_TIMEOUT_SECONDS: '2.5' }, /^CUSTOM_IMAGES_REGISTRY_TIMEOUT_SECONDS must be a whole number of seconds/],
    [{ CUSTOM_IMAGES_BUILD_CGROUP_PARENT: '/../escape' }, /^CUSTOM_IMAGES_BUILD_CGROUP_PARENT must be a cgroup path/],
    [{ CUSTOM_IMAGES_BUILD_CGROUP_PARENT: 'a b' }, /^CUSTOM_IMAGES_BUILD_CGROUP_PARENT must be a cgroup path/],
  ])('refuses %o with one line naming the variable', (patch, expected) => {
    const found = problems({ ...HUB_ENV, ...patch });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(expected);
  });

  it('lists every problem at once', () => {
    expect(problems({})).toEqual([expect.stringMatching(/^JUPYTERHUB_API_URL /), expect.stringMatching(/^JUPYTERHUB_API_TOKEN /)]);
  });
});

describe('the README', () => {
  it('has every variable the service reads in its configuration table', async () => {
    const fs = await import('node:fs');
    const variables = configVariables();
    expect(variables.length).toBeGreaterThan(30);
    const table = fs
      .readFileSync('README.md', 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('| `'));
    const missing = variables.filter((name) => !table.some((line) => line.includes(`\`${name}\``)));
    expect(missing).toEqual([]);
  });
});
