/**
 * A flat apt repository on 127.0.0.1 (`deb [trusted=yes] http://127.0.0.1:port/ ./`)
 * with one package the test makes with dpkg-deb: no Debian mirror is
 * reachable here. The Packages index is written by hand (the fields apt
 * needs: the control file's, Filename, Size, SHA256), so that nothing but
 * dpkg-deb is needed. Every path requested is kept.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';

export interface AptRepository {
  /** The apt source line builds use. */
  source: string;
  /** Paths requested, oldest first. */
  requests: string[];
  stop(): Promise<void>;
}

/** Serves a repository with package `name`, which installs `/usr/share/<name>/marker` holding `marker`. */
export async function startAptRepository(name: string, marker: string): Promise<AptRepository> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-apt-'));
  const root = path.join(dir, 'pkg');
  fs.mkdirSync(path.join(root, 'DEBIAN'), { recursive: true });
  fs.mkdirSync(path.join(root, 'usr', 'share', name), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr', 'share', name, 'marker'), marker);
  const control = `Package: ${name}\nVersion: 1.0\nArchitecture: all\nMaintainer: CI <ci@example.org>\nDescription: a package a test made\n`;
  fs.writeFileSync(path.join(root, 'DEBIAN', 'control'), control);
  const deb = `${name}_1.0_all.deb`;
  execFileSync('dpkg-deb', ['--build', '--root-owner-group', root, path.join(dir, deb)], { stdio: 'ignore' });
  const content = fs.readFileSync(path.join(dir, deb));
  const packages = `${control}Filename: ./${deb}\nSize: ${content.length}\nSHA256: ${createHash('sha256').update(content).digest('hex')}\n\n`;
  fs.writeFileSync(path.join(dir, 'Packages'), packages);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(url.pathname);
    const file = url.pathname.replace(/^\/+/, '');
    if (file === 'Packages' || file === deb) {
      res.writeHead(200).end(fs.readFileSync(path.join(dir, file)));
      return;
    }
    res.writeHead(404).end('not found');
  });
  // Builds run on the host's network and reach it here.
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    source: `deb [trusted=yes] http://127.0.0.1:${port}/ ./`,
    requests,
    async stop() {
      await new Promise((r) => server.close(r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
