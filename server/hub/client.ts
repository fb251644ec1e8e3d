/**
 * A small client of the JupyterHub REST API: who owns a token, and the hub's
 * version. Upstream failures are mapped here, in one place, to messages that
 * tell the operator what to fix.
 */
import { AppError } from '../errors.js';
import { HubIdentitySchema, type HubIdentity } from './identity.js';

export interface HubClientOptions {
  /** `JUPYTERHUB_API_URL`, e.g. `http://127.0.0.1:8081/hub/api`. */
  apiUrl: string;
  /** The service's own token, for calls made on the service's behalf. */
  apiToken: string;
  /** Swapped in tests; the global fetch otherwise. */
  fetch?: typeof fetch;
  /** Per-request timeout in milliseconds. */
  timeoutMs?: number;
}

/** The calls we make to JupyterHub. */
export interface HubClient {
  /** The owner of `token` and its scopes, or `null` when the hub refuses the token. */
  identify(token: string): Promise<HubIdentity | null>;
  /** The hub's version, from `GET /hub/api/`. */
  version(): Promise<string>;
  /** The groups `user` is in (the service's token needs `read:users:groups`); `[]` for an unknown user. */
  groupsOf(user: string): Promise<string[]>;
  /** The names of the hub's groups (the service's token needs `list:groups`). */
  groupNames(): Promise<string[]>;
  /** The names of the hub's users (the service's token needs `list:users`). */
  userNames(): Promise<string[]>;
  /** Whether the hub has `user`: false only when it answers 404 (the service's token needs a `read:users` scope). */
  userExists(user: string): Promise<boolean>;
  /** `user`'s default server: none, starting or stopping, or ready (the service's token needs `read:servers`). */
  serverState(user: string): Promise<ServerState>;
  /**
   * Asks the hub to start `user`'s default server with these `user_options`
   * (what a spawn form would give the spawner; the service's token needs `servers`).
   * Resolves once the hub took the request; the server may still be starting.
   */
  startServer(user: string, userOptions: Record<string, unknown>): Promise<void>;
  /** Asks the hub to stop `user`'s default server (the service's token needs `servers`); resolves once it took the request. */
  stopServer(user: string): Promise<void>;
}

/** A user's default server as the hub reports it. */
export type ServerState = { state: 'none' } | { state: 'pending'; pending: string } | { state: 'ready' };

/** Creates a {@link HubClient} over JupyterHub's REST API. */
export function createHubClient(options: HubClientOptions): HubClient {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const base = options.apiUrl.replace(/\/+$/, '');

  async function call(path: string, token: string, init: { method?: string; body?: unknown } = {}): Promise<Response> {
    try {
      return await doFetch(`${base}${path}`, {
        method: init.method ?? 'GET',
        headers: {
          Authorization: `token ${token}`,
          Accept: 'application/json',
          ...(init.body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (cause) {
      throw new AppError(
        'hub_unavailable',
        `Failed to connect to the Hub API at ${base}. Is the Hub accessible at this URL (from this host)?`,
        { cause, expose: true },
      );
    }
  }

  function unexpected(response: Response, what: string): AppError {
    return new AppError('hub_failed', `The Hub answered ${response.status} ${response.statusText} to ${what}; check the Hub's log.`, {
      expose: true,
    });
  }

  return {
    async identify(token) {
      const response = await call('/user', token);
      // JupyterHub answers 403 for an unknown or expired token (404 in some versions).
      if (response.status === 401 || response.status === 403 || response.status === 404) {
        await response.body?.cancel();
        return null;
      }
      if (!response.ok) throw unexpected(response, 'a token lookup');
      const parsed = HubIdentitySchema.safeParse(await response.json());
      if (!parsed.success) {
        throw new AppError('hub_failed', 'The Hub returned a user model we do not understand.', {
          cause: parsed.error,
          expose: true,
        });
      }
      return parsed.data;
    },

    async groupsOf(user) {
      const response = await call(`/users/${encodeURIComponent(user)}`, options.apiToken);
      if (response.status === 404) {
        await response.body?.cancel();
        return [];
      }
      if (!response.ok) throw unexpected(response, `a lookup of ${user}'s groups (the service needs the scope read:users:groups)`);
      const body = (await response.json()) as { groups?: unknown };
      return Array.isArray(body.groups) ? body.groups.filter((g): g is string => typeof g === 'string') : [];
    },

    async groupNames() {
      const names: string[] = [];
      // JupyterHub answers at most its api_page_max_limit (200 unless the admin set it lower) whatever
      // limit is asked: a short page is not the last one, an empty one is.
      for (let offset = 0; ;) {
        const response = await call(`/groups?offset=${offset}&limit=200`, options.apiToken);
        if (!response.ok) throw unexpected(response, 'a list of groups (the service needs the scope list:groups)');
        const page = (await response.json()) as Array<{ name?: unknown }>;
        if (page.length === 0) return names;
        names.push(...page.map((g) => g.name).filter((n): n is string => typeof n === 'string'));
        offset += page.length;
      }
    },

    async userNames() {
      const names: string[] = [];
      // Paged like groups: a short page is not the last one, an empty one is.
      for (let offset = 0; ;) {
        const response = await call(`/users?offset=${offset}&limit=200`, options.apiToken);
        if (!response.ok) throw unexpected(response, 'a list of users (the service needs the scope list:users)');
        const page = (await response.json()) as Array<{ name?: unknown }>;
        if (!Array.isArray(page) || page.length === 0) return names;
        names.push(...page.map((u) => u.name).filter((n): n is string => typeof n === 'string'));
        offset += page.length;
      }
    },

    async userExists(user) {
      const response = await call(`/users/${encodeURIComponent(user)}`, options.apiToken);
      await response.body?.cancel();
      if (response.status === 404) return false;
      if (!response.ok) throw unexpected(response, `a lookup of the user ${user} (the service needs the scope read:users:groups)`);
      return true;
    },

    async serverState(user) {
      const response = await call(`/users/${encodeURIComponent(user)}`, options.apiToken);
      if (!response.ok) throw unexpected(response, `a lookup of ${user}'s server (the service needs the scope read:servers)`);
      const body = (await response.json()) as { servers?: Record<string, { ready?: unknown; pending?: unknown }> };
      const server = body.servers?.[''];
      if (!server) return { state: 'none' };
      if (server.ready === true) return { state: 'ready' };
      return { state: 'pending', pending: typeof server.pending === 'string' ? server.pending : 'spawn' };
    },

    async startServer(user, userOptions) {
      const response = await call(`/users/${encodeURIComponent(user)}/server`, options.apiToken, { method: 'POST', body: userOptions });
      // 201: started; 202: starting. 400 is the hub's own word (e.g. "already running"): passed on.
      if (response.status === 201 || response.status === 202) {
        await response.body?.cancel();
        return;
      }
      const text = await response.text();
      let message = '';
      try {
        message = String((JSON.parse(text) as { message?: unknown }).message ?? '');
      } catch {
        // not JSON: the status says enough
      }
      if (response.status === 400 && message)
        throw new AppError('conflict', `The hub did not start your server: ${message}`, { expose: true });
      if (response.status === 403) throw unexpected(response, `starting ${user}'s server (the service needs the scope servers)`);
      throw unexpected(response, `starting ${user}'s server`);
    },

    async stopServer(user) {
      const response = await call(`/users/${encodeURIComponent(user)}/server`, options.apiToken, { method: 'DELETE' });
      await response.body?.cancel();
      // 204: stopped; 202: stopping; 400: it was not running.
      if (response.status === 204 || response.status === 202 || response.status === 400) return;
      throw unexpected(response, `stopping ${user}'s server (the service needs the scope servers)`);
    },

    async version() {
      const response = await call('/', options.apiToken);
      if (!response.ok) throw unexpected(response, 'a version request');
      const body = (await response.json()) as { version?: unknown };
      return typeof body.version === 'string' ? body.version : 'unknown';
    },
  };
}
