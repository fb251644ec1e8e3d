/**
 * Launch links, read without a network: the query form, the short forms
 * and their hosts, and `urlpath`, which must stay inside the visitor's
 * server whatever a stranger writes into a link.
 */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import {
  checkUrlpath,
  DEFAULT_LINK_HOSTS,
  landingPath,
  linkPath,
  parseLink,
  parseLinkHosts,
  parseShortLink,
} from '../../server/links/link.js';
import { imageNameFor } from '../../server/links/service.js';

const hosts = new Map(DEFAULT_LINK_HOSTS);
const trusted = (host: string) => host === 'git.lab.internal:3000';

function fields(call: () => unknown): Record<string, string> {
  try {
    call();
  } catch (err) {
    if (err instanceof AppError) return err.fields;
    throw err;
  }
  throw new Error('accepted');
}

describe('the query form', () => {
  it('reads repository, ref, system and urlpath', () => {
    expect(
      parseLink({ repo: 'https://github.com/lab/paper', ref: 'v1.2', system: 'dock', urlpath: 'lab/tree/paper.ipynb' }, trusted),
    ).toEqual({ repo: 'https://github.com/lab/paper', ref: 'v1.2', system: 'dock', urlpath: 'lab/tree/paper.ipynb' });
  });

  it('leaves ref, system and urlpath blank when not given', () => {
    expect(parseLink({ repo: 'https://gitlab.com/g/sub/r.git' }, trusted)).toEqual({
      repo: 'https://gitlab.com/g/sub/r.git',
      ref: '',
      system: '',
      urlpath: '',
    });
  });

  it.each([
    ['', 'repo', /Name the repository/],
    ['github.com/lab/paper', 'repo', /https URL/],
    ['http://github.com/lab/paper', 'repo', /starts with https/],
    ['ftp://github.com/lab/paper', 'repo', /starts with https/],
    ['https://user:ghp_secret@github.com/lab/paper', 'repo', /no credentials/],
    ['https://github.com/lab/paper?x=1', 'repo', /no \?query/],
    ['https://github.com/', 'repo', /names a repository/],
  ])('refuses the repository %j naming the field', (repo, field, message) => {
    expect(fields(() => parseLink({ repo }, trusted))[field]).toMatch(message);
  });

  it('takes plain http only from a host the admin trusts', () => {
    expect(parseLink({ repo: 'http://git.lab.internal:3000/a/b' }, trusted).repo).toBe('http://git.lab.internal:3000/a/b');
    expect(fields(() => parseLink({ repo: 'http://git.lab.internal:3001/a/b' }, trusted)).repo).toMatch(/https/);
  });

  it.each(['--upload-pack=x', 'a..b', 'main branch', 'a//b', 'x'.repeat(256)])('refuses the ref %j', (ref) => {
    expect(fields(() => parseLink({ repo: 'https://github.com/a/b', ref }, trusted)).ref).toMatch(/branch, tag or commit/);
  });

  it('names every wrong field at once, and never the other ones', () => {
    const problems = fields(() => parseLink({ repo: 'nope', ref: '..', system: '../x', urlpath: '../hub' }, trusted));
    expect(Object.keys(problems).sort()).toEqual(['ref', 'repo', 'system', 'urlpath']);
  });
});

describe('urlpath', () => {
  it.each([
    ['lab/tree/paper.ipynb', 'lab/tree/paper.ipynb'],
    ['/lab/tree/paper.ipynb', 'lab/tree/paper.ipynb'],
    ['tree/notebooks/a%20b.ipynb', 'tree/notebooks/a%20b.ipynb'],
    ['lab?reset', 'lab?reset'],
    ['voila/render/x.ipynb', 'voila/render/x.ipynb'],
    ['a..b/c', 'a..b/c'],
    ['', ''],
  ])('keeps %j inside the server as %j', (given, kept) => {
    expect(checkUrlpath(given)).toEqual({ ok: true, path: kept });
  });

  it.each([
    'https://evil.example/x',
    'javascript:alert(1)',
    '//evil.example/x',
    '/\\evil.example',
    '../../hub/admin',
    'lab/../../other-user/',
    '%2e%2e/%2e%2e/hub/token',
    'lab/%2E%2E/%2e%2e/hub',
    './lab',
    'lab\\..\\..\\hub',
    'lab#frag',
    'lab/tree/\u00e9t\u00e9.ipynb',
    'lab/tree/a b.ipynb',
    'lab\n/x',
    '%ZZ',
    'x'.repeat(1025),
  ])('refuses %j', (given) => {
    expect(checkUrlpath(given).ok).toBe(false);
  });

  it('lands under the hub base URL in the user’s own server', () => {
    expect(landingPath('/', 'ada', 'lab/tree/paper.ipynb')).toBe('/user/ada/lab/tree/paper.ipynb');
    expect(landingPath('/jhub/', 'ada', '')).toBe('/jhub/user/ada/');
  });
});

describe('the short forms', () => {
  it.each([
    ['gh/lab/paper', { repo: 'https://github.com/lab/paper', ref: '' }],
    ['gh/lab/paper/main', { repo: 'https://github.com/lab/paper', ref: 'main' }],
    ['gl/group/env/feature/x', { repo: 'https://gitlab.com/group/env', ref: 'feature/x' }],
    [
      'gh/lab/paper/0123456789abcdef0123456789abcdef01234567',
      { repo: 'https://github.com/lab/paper', ref: '0123456789abcdef0123456789abcdef01234567' },
    ],
  ])('reads %j', (path, expected) => {
    expect(parseShortLink(path, { urlpath: 'lab', system: 'dock' }, hosts, trusted)).toEqual({
      ...expected,
      system: 'dock',
      urlpath: 'lab',
    });
  });

  it.each([
    ['xx/lab/paper', /"xx" is not a short form.*gh\/, gl\//],
    ['gh/lab', /gh\/ORG\/REPO/],
    ['gh/../paper', /gh\/ORG\/REPO/],
    ['gh/lab/.git', /gh\/ORG\/REPO/],
    ['gh/lab%2fx/paper', /gh\/ORG\/REPO/],
  ])('refuses %j in words', (path, message) => {
    expect(fields(() => parseShortLink(path, {}, hosts, trusted)).repo).toMatch(message);
  });

  it('maps a site’s own host that an admin adds', () => {
    const parsed = parseLinkHosts('gh=https://github.com, gitea=http://git.lab.internal:3000');
    if (!('hosts' in parsed)) throw new Error(parsed.error);
    expect(parseShortLink('gitea/a/b/v1', {}, parsed.hosts, trusted).repo).toBe('http://git.lab.internal:3000/a/b');
  });

  it.each(['GH=https://github.com', 'gh=github.com', 'gh=https://github.com/org', 'gh=ssh://github.com'])(
    'refuses the host setting %j',
    (value) => {
      expect(parseLinkHosts(value)).toHaveProperty('error');
    },
  );

  it('hands out the query form of a link, which reads back the same', () => {
    const link = { repo: 'https://github.com/lab/paper', ref: 'main', system: 'dock', urlpath: 'lab/tree/a%20b.ipynb' };
    const query = Object.fromEntries(new URL(linkPath(link), 'http://x/').searchParams);
    expect(parseLink(query, trusted)).toEqual(link);
  });
});

describe("the visitor's image name", () => {
  it.each([
    ['https://github.com/lab/paper', 'paper'],
    ['https://github.com/lab/My_Paper.git', 'my_paper'],
    ['https://gitlab.com/g/sub/--Odd..Name--', 'odd-name'],
    ['https://github.com/lab/ünïcode', 'n-code'],
    ['https://github.com/lab/___', 'repository'],
    [`https://github.com/lab/${'a'.repeat(80)}`, 'a'.repeat(50)],
  ])('of %s is %s', (repo, name) => {
    expect(imageNameFor(repo)).toBe(name);
    expect(name).toMatch(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/);
  });
});
