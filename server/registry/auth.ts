/**
 * Answering a registry's challenge (the distribution spec's token
 * authentication): Basic credentials checked by a ping, or a Bearer token
 * from the realm the registry names, reused until it expires. A user's
 * password goes only to an https realm or to the registry's own host.
 */
import { createHash } from 'node:crypto';
import type { TokenCache } from './caches.js';
import type { Challenge } from './challenge.js';
import { readLimited } from './digest.js';
import { RegistryError } from './errors.js';
import { bareHost } from './guard.js';
import type { RegistryCredentials } from './media.js';
import type { ImageReference } from './reference.js';
import type { RegistryTransport } from './transport.js';

/** What answering a challenge needs to know of the session. */
export interface ChallengeContext {
  transport: RegistryTransport;
  /** Where the registry's API is. */
  base: URL;
  reference: ImageReference;
  credentials: RegistryCredentials | undefined;
  tokens: TokenCache;
  signal?: AbortSignal | undefined;
}

/** The largest token answer read. */
const TOKEN_BYTES = 1024 * 1024;

function wrongCredentials(registry: string): RegistryError {
  return new RegistryError(
    'registry.unauthorized',
    `The registry ${registry} refused the username and password (or token). Check them and save them again.`,
  );
}

const basic = (credentials: RegistryCredentials) =>
  `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;

/** The Authorization header value that answers `challenge`. */
export async function answerChallenge(challenge: Challenge, ctx: ChallengeContext): Promise<string> {
  const { reference, credentials, base } = ctx;
  if (challenge.scheme === 'basic') {
    if (!credentials) {
      throw new RegistryError(
        'registry.denied',
        `The registry ${reference.registry} needs a login for ${reference.repository}. Add the registry's username and password or token to this image.`,
      );
    }
    const authorization = basic(credentials);
    // Basic credentials are checked by the ping: a 401 here is a wrong password.
    const ping = await ctx.transport.request(new URL('/v2/', base), {
      authorization: { host: base.host, value: authorization },
      signal: ctx.signal,
    });
    await ping.body?.cancel();
    if (ping.status === 401) throw wrongCredentials(reference.registry);
    return authorization;
  }
  if (challenge.scheme !== 'bearer') {
    throw new RegistryError(
      'registry.unsupported',
      `The registry ${reference.registry} asks for "${challenge.scheme}" authentication, which is not supported.`,
    );
  }
  const realm = challenge.params.realm;
  if (!realm || !URL.canParse(realm))
    throw new RegistryError('registry.protocol', `The registry ${reference.registry} named no valid token service.`);
  const realmUrl = new URL(realm);
  if (realmUrl.protocol !== 'https:' && realmUrl.protocol !== 'http:')
    throw new RegistryError('registry.protocol', 'The token service address is not http(s).');
  if (challenge.params.service) realmUrl.searchParams.set('service', challenge.params.service);
  realmUrl.searchParams.set('scope', challenge.params.scope ?? `repository:${reference.repository}:pull`);

  const mayCarryCredentials = realmUrl.protocol === 'https:' || bareHost(realmUrl) === bareHost(base);
  const sent = mayCarryCredentials ? credentials : undefined;
  const cacheKey = `${realmUrl.href}|${sent ? `${sent.username}|${createHash('sha256').update(sent.password).digest('hex')}` : 'anonymous'}`;
  const cached = ctx.tokens.get(cacheKey);
  if (cached) return `Bearer ${cached}`;
  const response = await ctx.transport.request(realmUrl, {
    headers: { Accept: 'application/json' },
    signal: ctx.signal,
    authorization: sent ? { host: realmUrl.host, value: basic(sent) } : undefined,
  });
  if (response.status === 401 || response.status === 403) {
    await response.body?.cancel();
    if (sent) throw wrongCredentials(reference.registry);
    throw new RegistryError(
      'registry.denied',
      `The registry ${reference.registry} refused anonymous access to ${reference.repository}. If it is private, add its username and password or token.`,
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new RegistryError('registry.server_error', `The token service of ${reference.registry} answered HTTP ${response.status}.`);
  }
  let body: { token?: string; access_token?: string; expires_in?: number };
  try {
    body = JSON.parse((await readLimited(response, TOKEN_BYTES, 'The token')).toString('utf8')) as typeof body;
  } catch (cause) {
    if (cause instanceof RegistryError) throw cause;
    throw new RegistryError('registry.protocol', `The token service of ${reference.registry} sent no JSON.`, { cause });
  }
  const token = body.token ?? body.access_token;
  if (!token) throw new RegistryError('registry.protocol', `The token service of ${reference.registry} sent no token.`);
  ctx.tokens.set(cacheKey, token, typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60);
  return `Bearer ${token}`;
}
