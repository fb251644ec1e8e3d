/**
 * A git smart-HTTP server on loopback: git's own http-backend behind a small
 * node server, serving repositories the test writes. Repositories under
 * private/ need Basic auth whose password is the server's token; every
 * request seen is kept (path and Authorization header), so a test can tell
 * what was asked and sent.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

export interface GitServer {
  /** http://127.0.0.1:port */
  origin: string;
  host: string;
  token: string;
  /** Every request received, oldest first. */
  requests: Array<{ method: string; path: string; authorization: string | undefined }>;
  /** Creates (or adds a commit to) a repository; returns the commit id. */
  commit(repo: string, files: Record<string, string>, message?: string): string;
  /** Runs git in a repository (created empty if need be), with `input` on stdin; returns its output, trimmed. */
  git(repo: string, args: string[], input?: Buffer | string): string;
  stop(): Promise<void>;
}

export async function startGitServer(token = 'ghp_ci-token-5b2f9a'): Promise<GitServer> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-git-'));
  const requests: GitServer['requests'] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({ method: req.method ?? 'GET', path: url.pathname, authorization: req.headers.authorization });
    if (url.pathname.startsWith('/private/')) {
      const auth = req.headers.authorization ?? '';
      const password = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString().split(':').slice(1).join(':') : '';
      if (password !== token) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end('authentication required');
        return;
      }
    }
    const cgi = spawn('/usr/lib/git-core/git-http-backend', [], {
      env: {
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        REQUEST_METHOD: req.method ?? 'GET',
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] } : {}),
        REMOTE_ADDR: '127.0.0.1',
        GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
      },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) return void res.write(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString().split('\r\n')) {
        const [name, ...rest] = line.split(':');
        const value = rest.join(':').trim();
        if (name?.toLowerCase() === 'status') status = Number(value.split(' ')[0]);
        else if (name) res.setHeader(name, value);
      }
      res.writeHead(status);
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => res.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const run = (cwd: string, args: string[], input?: Buffer | string) =>
    execFileSync('git', ['-c', 'user.email=ci@example.org', '-c', 'user.name=CI', '-c', 'init.defaultBranch=main', ...args], {
      cwd,
      maxBuffer: 64 * 1024 * 1024,
      ...(input !== undefined ? { input } : {}),
    })
      .toString()
      .trim();
  const git = (cwd: string, ...args: string[]) => run(cwd, args);
  const repoDir = (repo: string) => {
    const dir = path.join(root, repo);
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir, { recursive: true });
      git(dir, 'init', '-q');
      git(dir, 'config', 'receive.denyCurrentBranch', 'ignore');
    }
    return dir;
  };
  return {
    origin: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    token,
    requests,
    git: (repo, args, input) => run(repoDir(repo), args, input),
    commit(repo, files, message = 'a commit') {
      const dir = repoDir(repo);
      for (const [name, content] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        fs.writeFileSync(path.join(dir, name), content);
      }
      git(dir, 'add', '-A');
      git(dir, 'commit', '-q', '-m', message);
      return git(dir, 'rev-parse', 'HEAD');
    },
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        fs.rmSync(root, { recursive: true, force: true });
      }),
  };
}
