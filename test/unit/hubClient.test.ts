/** The hub client's reading of JupyterHub's paged group list (pure logic over the hub's answers). */
import { describe, expect, it } from 'vitest';
import { createHubClient } from '../../server/hub/client.js';

/** Answers GET /groups as JupyterHub does: `offset`, and `limit` capped at the hub's api_page_max_limit. */
function pagedHub(groups: string[], maxLimit: number): { fetch: typeof fetch; requests: string[] } {
  const requests: string[] = [];
  const stub = async (input: string | URL | Request) => {
    const url = new URL(String(input));
    requests.push(`${url.pathname}${url.search}`);
    const offset = Number(url.searchParams.get('offset') ?? 0);
    const limit = Math.min(Number(url.searchParams.get('limit') ?? maxLimit), maxLimit);
    return Response.json(groups.slice(offset, offset + limit).map((name) => ({ kind: 'group', name, users: [] })));
  };
  return { fetch: stub as typeof fetch, requests };
}

describe('HubClient.groupNames', () => {
  const groups = Array.from({ length: 120 }, (_, i) => `group${i}`);

  it('reads every page of a hub whose page limit is below the one asked', async () => {
    const hub = pagedHub(groups, 50);
    const client = createHubClient({ apiUrl: 'http://hub.test/hub/api', apiToken: 't', fetch: hub.fetch });
    expect(await client.groupNames()).toEqual(groups);
    expect(hub.requests).toEqual([
      '/hub/api/groups?offset=0&limit=200',
      '/hub/api/groups?offset=50&limit=200',
      '/hub/api/groups?offset=100&limit=200',
      '/hub/api/groups?offset=120&limit=200',
    ]);
  });

  it('reads a short list with the default limit', async () => {
    const hub = pagedHub(groups, 200);
    const client = createHubClient({ apiUrl: 'http://hub.test/hub/api', apiToken: 't', fetch: hub.fetch });
    expect(await client.groupNames()).toEqual(groups);
  });
});
