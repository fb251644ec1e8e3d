/**
 * The SSRF guard: a registry (and every host it redirects us to, and its
 * token realm) may only be reached on a public address, checked on the
 * address actually connected to, DNS answers included. An admin may trust a
 * registry (host:port) explicitly; only the requests made for that registry
 * (its own API, and the realm and redirects it names) may then reach private
 * addresses, never those made for another registry that names it.
 */
import dns from 'node:dns';
import net from 'node:net';
import { Agent, type Dispatcher } from 'undici';
import { RegistryError } from './errors.js';

const blocked = new net.BlockList();
// IPv4: this network, private, CGNAT (and Alibaba's metadata), loopback,
// link-local (and the cloud metadata address), IETF, TEST-NETs, benchmarking,
// multicast and reserved.
for (const [address, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(address, prefix, 'ipv4');
}
// IPv6: unspecified, loopback, IPv4-compatible/mapped handled below, discard,
// documentation, unique local (and AWS's fd00:ec2::254), link-local, multicast.
for (const [address, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  blocked.addSubnet(address, prefix, 'ipv6');
}

/** IPv4 inside IPv6 (::ffff:10.0.0.1, ::10.0.0.1, 64:ff9b::10.0.0.1) is judged as IPv4. */
function embeddedIPv4(address: string): string | undefined {
  const m = /^(?:::ffff:|::|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (m) return m[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hex) {
    const a = parseInt(hex[1] ?? '0', 16);
    const b = parseInt(hex[2] ?? '0', 16);
    return `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  return undefined;
}

/** Whether `address` (an IP literal) is a public unicast address. */
export function isPublicAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  const family = net.isIP(bare);
  if (family === 0) return false;
  if (family === 6) {
    const v4 = embeddedIPv4(bare);
    if (v4) return !blocked.check(v4, 'ipv4');
    return !blocked.check(bare, 'ipv6');
  }
  return !blocked.check(bare, 'ipv4');
}

/** What one set of requests may reach. */
export interface AddressPolicy {
  /** Private, loopback and link-local addresses too: the requests are for a registry an admin trusts. */
  allowPrivate: boolean;
}

/** The host of a URL without brackets or port, lower case. */
export function bareHost(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

/** Refuses an IP-literal host on a private address (names are checked at lookup). */
export function checkLiteralHost(url: URL, policy: AddressPolicy): void {
  const host = bareHost(url);
  if (net.isIP(host) && !policy.allowPrivate && !isPublicAddress(host)) {
    throw refused(host, host);
  }
}

/**
 * Resolves `host` as a connection would and refuses it unless every address
 * is public: for connections this service does not make itself (the Docker
 * engine's pulls), checked just before they are asked for.
 */
export async function assertPublicHost(host: string): Promise<void> {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (net.isIP(bare)) {
    if (!isPublicAddress(bare)) throw refused(bare, bare);
    return;
  }
  let addresses: dns.LookupAddress[];
  try {
    addresses = await dns.promises.lookup(bare, { all: true });
  } catch (cause) {
    throw new RegistryError('registry.unreachable', `The registry ${bare} cannot be reached: the name does not resolve.`, { cause });
  }
  const bad = addresses.find((a) => !isPublicAddress(a.address));
  if (bad) throw refused(bare, bad.address);
}

function refused(host: string, address: string): RegistryError {
  return new RegistryError(
    'registry.refused_address',
    `The registry ${host} is on a private or internal network address; this service only contacts registries on public addresses unless the hub admin trusts that registry explicitly (CUSTOM_IMAGES_TRUSTED_REGISTRIES).`,
    { detail: `${host} resolved to ${address}` },
  );
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * An undici dispatcher whose DNS lookup refuses private answers for untrusted
 * hosts, so the check applies to the address actually connected to.
 */
export interface GuardedDispatcherTimeouts {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

export function createGuardedDispatcher(policy: AddressPolicy, options: GuardedDispatcherTimeouts): Dispatcher {
  const lookup = (hostname: string, lookupOptions: dns.LookupOptions, callback: LookupCallback) => {
    dns.lookup(hostname, { ...lookupOptions, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as dns.LookupAddress[];
      const host = hostname.toLowerCase();
      if (!policy.allowPrivate) {
        // One private answer is enough to refuse: DNS rebinding picks its moment.
        const bad = list.find((a) => !isPublicAddress(a.address));
        if (bad) return callback(refused(host, bad.address) as unknown as NodeJS.ErrnoException, []);
      }
      if (lookupOptions.all) return callback(null, list);
      const first = list[0];
      if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
      return callback(null, first.address, first.family);
    });
  };
  return new Agent({
    connect: { lookup: lookup as unknown as net.LookupFunction, timeout: options.connectTimeoutMs },
    headersTimeout: options.headersTimeoutMs,
    // The longest silence while a body streams; a stalled registry fails here.
    bodyTimeout: options.bodyTimeoutMs,
    connections: 8,
    keepAliveTimeout: 10_000,
  });
}
