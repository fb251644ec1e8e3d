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

/** Answers each request with the hub's answer for its method and path; keeps what was asked and sent. */
function answeringHub(answers: Record<string, () => Response>): { fetch: typeof fetch; requests: string[] } {
  const requests: string[] = [];
  const stub = async (input: string | URL | Request, init?: RequestInit) => {
    const key = `${init?.method ?? 'GET'} ${new URL(String(input)).pathname}`;
    requests.push(init?.body ? `${key} ${String(init.body)}` : key);
    const answer = answers[key];
    return answer ? answer() : new Response('not found', { status: 404 });
  };
  return { fetch: stub as typeof fetch, requests };
}

describe("HubClient: a user's default server (launch links)", () => {
  const client = (answers: Record<string, () => Response>) => {
    const hub = answeringHub(answers);
    return { hub, client: createHubClient({ apiUrl: 'http://hub.test/hub/api', apiToken: 't', fetch: hub.fetch }) };
  };

  it.each([
    [{ servers: {} }, { state: 'none' }],
    [{}, { state: 'none' }],
    [{ servers: { '': { ready: false, pending: 'spawn' } } }, { state: 'pending', pending: 'spawn' }],
    [{ servers: { '': { ready: false, pending: 'stop' } } }, { state: 'pending', pending: 'stop' }],
    [{ servers: { '': { ready: true, pending: null } } }, { state: 'ready' }],
    // A named server is not the default one.
    [{ servers: { other: { ready: true, pending: null } } }, { state: 'none' }],
  ])('reads the user model %j as %j', async (model, state) => {
    const { client: hub } = client({ 'GET /hub/api/users/ada': () => Response.json(model) });
    expect(await hub.serverState('ada')).toEqual(state);
  });

  it('starts with the user options as the body, and takes 201 and 202', async () => {
    for (const status of [201, 202]) {
      const { hub, client: c } = client({ 'POST /hub/api/users/ada%2Fx/server': () => new Response(null, { status }) });
      await c.startServer('ada/x', { custom_images_system: 'dock', custom_images_image_id: 7 });
      expect(hub.requests).toEqual(['POST /hub/api/users/ada%2Fx/server {"custom_images_system":"dock","custom_images_image_id":7}']);
    }
  });

  it("passes the hub's own refusal on in words, and names the scope for a 403", async () => {
    const refused = client({
      'POST /hub/api/users/ada/server': () => Response.json({ status: 400, message: 'ada is already running' }, { status: 400 }),
    }).client;
    await expect(refused.startServer('ada', {})).rejects.toThrow(/The hub did not start your server: ada is already running/);
    const forbidden = client({ 'POST /hub/api/users/ada/server': () => new Response('{}', { status: 403 }) }).client;
    await expect(forbidden.startServer('ada', {})).rejects.toThrow(/needs the scope servers/);
  });

  it('stops a server, and takes "not running" as stopped', async () => {
    for (const status of [202, 204, 400]) {
      const { client: c } = client({ 'DELETE /hub/api/users/ada/server': () => new Response(null, { status }) });
      await expect(c.stopServer('ada')).resolves.toBeUndefined();
    }
    const { client: c } = client({ 'DELETE /hub/api/users/ada/server': () => new Response(null, { status: 403 }) });
    await expect(c.stopServer('ada')).rejects.toThrow(/needs the scope servers/);
  });
});
