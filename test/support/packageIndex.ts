/**
 * A Python package index on 127.0.0.1 (PEP 503's simple repository API),
 * serving pure-Python wheels the test makes with Python's zipfile: no public
 * index is reachable here. Builds use it with `--index-url`; the test adds
 * versions while it runs (a newer release that pins must not pick up), and
 * every file requested is kept, so a test can tell what pip downloaded.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';

export interface PackageIndex {
  /** http://127.0.0.1:port/simple, for `--index-url`. */
  url: string;
  /**
   * Adds a release of a project: a wheel of one empty module, or with `size`
   * a package of that many modules of Python source (functions, which pip
   * byte-compiles as it does a real package's), each about `moduleBytes`.
   */
  add(name: string, version: string, size?: { modules: number; moduleBytes: number }): void;
  /** The wheel files pip downloaded, in order. */
  downloads: string[];
  stop(): Promise<void>;
}

/** A project name as PEP 503 normalises it for its URL. */
function normalized(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');

/** Writes a pure-Python wheel with Python's zipfile (argv[1]: what to write, as JSON). */
const WHEEL_WRITER = `
import json, sys, zipfile
a = json.loads(sys.argv[1])
names = []
with zipfile.ZipFile(a['file'], 'w', zipfile.ZIP_DEFLATED) as z:
    def add(name, text):
        names.append(name)
        z.writestr(name, text)
    add(a['module'] + '/__init__.py', '__version__ = "%s"\\n' % a['version'])
    for m in range(a['modules']):
        body, n, size = [], 0, 0
        while size < a['bytes']:
            body.append('def f%d(x, y=%d):\\n    return [x + y * i for i in range(%d)]\\n\\n' % (n, m, n))
            size += len(body[-1])
            n += 1
        add('%s/m%d.py' % (a['module'], m), ''.join(body))
    info = a['dist'] + '.dist-info/'
    add(info + 'METADATA', 'Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n' % (a['project'], a['version']))
    add(info + 'WHEEL', 'Wheel-Version: 1.0\\nGenerator: ci\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
    names.append(info + 'RECORD')
    z.writestr(info + 'RECORD', ''.join(n + ',,\\n' for n in names))
`;

export async function startPackageIndex(): Promise<PackageIndex> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-index-'));
  /** Normalised project name -> wheel file names. */
  const projects = new Map<string, string[]>();
  const downloads: string[] = [];

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const page = (body: string) =>
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(`<!DOCTYPE html><html><body>${body}</body></html>`);
    if (url.pathname === '/simple/' || url.pathname === '/simple') {
      page([...projects.keys()].map((p) => `<a href="/simple/${p}/">${p}</a>`).join('\n'));
      return;
    }
    const project = /^\/simple\/([^/]+)\/?$/.exec(url.pathname);
    if (project) {
      const files = projects.get(normalized(decodeURIComponent(project[1] ?? '')));
      if (!files) {
        res.writeHead(404).end('no such project');
        return;
      }
      page(
        files
          .map((file) => {
            const sha = createHash('sha256')
              .update(fs.readFileSync(path.join(dir, file)))
              .digest('hex');
            return `<a href="/files/${encodeURIComponent(file)}#sha256=${sha}">${escape(file)}</a>`;
          })
          .join('\n'),
      );
      return;
    }
    const file = /^\/files\/([^/]+)$/.exec(url.pathname);
    const name = file ? decodeURIComponent(file[1] ?? '') : '';
    if (file && fs.existsSync(path.join(dir, name)) && !name.includes('..')) {
      downloads.push(name);
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(fs.readFileSync(path.join(dir, name)));
      return;
    }
    res.writeHead(404).end('not found');
  });
  // Builds run on the host's network and reach it here.
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/simple`,
    downloads,
    add(project, version, size) {
      const dist = `${project.replace(/[-.]+/g, '_')}-${version}`;
      const file = `${dist}-py3-none-any.whl`;
      const module = project.replace(/[-.]+/g, '_').toLowerCase();
      const args = {
        file: path.join(dir, file),
        project,
        version,
        dist,
        module,
        modules: size?.modules ?? 0,
        bytes: size?.moduleBytes ?? 0,
      };
      execFileSync('/usr/bin/python3', ['-c', WHEEL_WRITER, JSON.stringify(args)]);
      const key = normalized(project);
      projects.set(key, [...(projects.get(key) ?? []), file]);
    },
    async stop() {
      await new Promise((r) => server.close(r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
