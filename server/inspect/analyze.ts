/**
 * Decides, from the image's merged filesystem and config, whether it can run
 * `jupyterhub-singleuser`, and says why not in words a researcher
 * understands. Pure: no network, no Docker.
 */
import type { ImageConfig } from '../registry/client.js';
import { imageUid, runAsFor } from '../systems/runAs.js';
import type { ImagePolicy } from '../systems/schema.js';
import type { MergedFilesystem } from './filesystem.js';
import { compareVersions, versionFindings, type RuleInputs } from './rules.js';

export type FindingLevel = 'error' | 'warning' | 'info';

/** One observation, with a stable code. */
export interface Finding {
  code: string;
  level: FindingLevel;
  message: string;
}

/** What the check learned about the image. */
export interface ImageFacts {
  path: string[];
  singleuser: { path: string; resolvedPath: string; version: string | undefined } | undefined;
  interpreter: { path: string; resolvedPath: string } | undefined;
  python: { version: string | undefined } | undefined;
  pip: { path: string } | undefined;
  jupyterhubVersion: string | undefined;
  users: Array<{ name: string; uid: number; home?: string }>;
  configUser: string;
  /** Who servers run as on the checked system; absent in checks made before this was recorded. */
  runAs?: { uid: number; gid: number; user?: string; home: string; homeWritable: boolean };
}

/** The PATH Docker uses when the image sets none. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** PATH from the config's Env, or Docker's default. */
export function imagePath(config: ImageConfig): string[] {
  const entry = (config.config?.Env ?? []).find((e) => e.startsWith('PATH='));
  const value = entry ? entry.slice(5) : DEFAULT_PATH;
  return value.split(':').filter((dir) => dir.startsWith('/'));
}

/** `#!/usr/bin/env -S python3 -u` -> { program: 'python3', viaEnv: true }. */
export function parseShebang(head: string): { interpreter: string; viaEnv: boolean } | undefined {
  if (!head.startsWith('#!')) return undefined;
  const firstLine = head.slice(2).split('\n')[0]?.trim() ?? '';
  const words = firstLine.split(/\s+/).filter(Boolean);
  const [interpreter, ...args] = words;
  if (!interpreter) return undefined;
  // pip writes `#!/bin/sh` + `'''exec' "/long/path/python" "$0" "$@"` when the path is too long for a shebang.
  if (/\/(ba)?sh$/.test(interpreter)) {
    const exec = /^'''exec' "?([^"\s]+)"?/m.exec(head.split('\n').slice(1).join('\n'));
    if (exec?.[1]) return { interpreter: exec[1], viaEnv: false };
  }
  if (interpreter.endsWith('/env')) {
    const program = args.find((a) => !a.startsWith('-') && !a.includes('='));
    if (program) return { interpreter: program, viaEnv: true };
  }
  return { interpreter, viaEnv: false };
}

function parsePasswd(content: string): ImageFacts['users'] {
  return content
    .split('\n')
    .map((line) => line.split(':'))
    .filter((f) => f.length >= 4 && f[0] && /^\d+$/.test(f[2] ?? ''))
    .map((f) => ({ name: f[0] as string, uid: Number(f[2]), ...(f[5] ? { home: f[5] } : {}) }));
}

export interface AnalyzeOptions {
  policy: ImagePolicy;
  /** The hub's version, from /hub/api/; compared by major version. */
  hubVersion?: string | undefined;
}

/** Findings and facts for one image. */
export function analyzeImage(
  fs: MergedFilesystem,
  config: ImageConfig,
  options: AnalyzeOptions,
): { findings: Finding[]; facts: ImageFacts } {
  const findings: Finding[] = [];
  const add = (code: string, level: FindingLevel, message: string) => findings.push({ code, level, message });
  const path = imagePath(config);
  const facts: ImageFacts = {
    path,
    singleuser: undefined,
    interpreter: undefined,
    python: undefined,
    pip: undefined,
    jupyterhubVersion: undefined,
    users: [],
    configUser: config.config?.User ?? '',
  };

  /** The first PATH entry where `name` is a regular file (symlinks followed). */
  const which = (name: string) => {
    for (const dir of path) {
      const candidate = `${dir}/${name}`;
      const found = fs.resolve(candidate);
      if (found.found && found.entry.type === 'file') return { path: candidate, resolved: found };
    }
    return undefined;
  };

  // jupyterhub-singleuser on PATH, as the spawner starts it.
  const singleuser = which('jupyterhub-singleuser');
  let prefix: string | undefined;
  if (!singleuser) {
    const broken = path.map((dir) => fs.resolve(`${dir}/jupyterhub-singleuser`)).find((r) => !r.found && r.via.length > 0);
    add(
      'singleuser.missing',
      'error',
      broken
        ? `jupyterhub-singleuser is a broken link (${broken.via.join(', ')}): its target ${broken.path} is missing.`
        : `jupyterhub-singleuser is not on the image's PATH (${path.join(':')}). Install JupyterHub in the image, e.g. "pip install jupyterhub${options.hubVersion ? `==${options.hubVersion.split('.')[0]}.*` : ''}", so that the hub can start your server.`,
    );
  } else {
    const { entry, path: resolvedPath } = singleuser.resolved as { entry: { mode: number; head?: string }; path: string };
    facts.singleuser = { path: singleuser.path, resolvedPath, version: undefined };
    if ((entry.mode & 0o111) === 0) {
      add(
        'singleuser.not_executable',
        'error',
        `${singleuser.path} exists but is not executable (mode ${(entry.mode & 0o777).toString(8).padStart(3, '0')}). Add "RUN chmod +x ${resolvedPath}" to your Dockerfile.`,
      );
    }
    const head = entry.head ?? '';
    const shebang = parseShebang(head);
    if (shebang) {
      const interpreter = shebang.interpreter.includes('/')
        ? { path: shebang.interpreter, resolved: fs.resolve(shebang.interpreter) }
        : which(shebang.interpreter);
      if (!interpreter || !interpreter.resolved.found) {
        add(
          'interpreter.missing',
          'error',
          shebang.viaEnv
            ? `jupyterhub-singleuser runs "${shebang.interpreter}" (through /usr/bin/env), but there is no ${shebang.interpreter} on the image's PATH.`
            : `jupyterhub-singleuser starts with #!${shebang.interpreter}, but ${shebang.interpreter} does not exist in the image. Was Python removed or moved after JupyterHub was installed?`,
        );
      } else if (interpreter.resolved.found) {
        const resolved = interpreter.resolved.path;
        facts.interpreter = { path: interpreter.path, resolvedPath: resolved };
        if ((interpreter.resolved.entry.mode & 0o111) === 0) {
          add('interpreter.not_executable', 'error', `The interpreter ${resolved} of jupyterhub-singleuser is not executable.`);
        }
        prefix = resolved.split('/').slice(0, -2).join('/') || '/';
        const fromName = /python(\d+\.\d+)/.exec(resolved.slice(resolved.lastIndexOf('/')))?.[1];
        facts.python = { version: fromName ?? pythonVersionUnder(fs, prefix) };
      }
    } else if (head.startsWith('\u007fELF')) {
      add('singleuser.binary', 'info', `${singleuser.path} is a compiled program, not a Python script.`);
    } else if (entry.mode & 0o111) {
      add('singleuser.no_interpreter', 'warning', `${singleuser.path} has no "#!" line naming its interpreter; it may not start.`);
    }
  }

  // JupyterHub's own version, from its package metadata; pip, for users who install packages in their server.
  facts.jupyterhubVersion = jupyterhubVersion(fs, prefix);
  if (facts.singleuser) facts.singleuser.version = facts.jupyterhubVersion;
  const pip = which('pip3') ?? which('pip');
  if (pip) facts.pip = { path: pip.path };
  else if (prefix && hasPipModule(fs, prefix)) facts.pip = { path: `${prefix}/lib/python*/site-packages/pip` };
  // The version rules (inspect/rules.ts), which a forecast applies to a stored inventory as well.
  findings.push(...versionFindings(ruleInputsOf(facts), options));

  // Users: the config's USER must exist; servers run as the system's uid, whose home must be writable.
  const passwd = fs.resolve('/etc/passwd');
  if (passwd.found && passwd.entry.head !== undefined) facts.users = parsePasswd(passwd.entry.head);
  const user = facts.configUser.split(':')[0] ?? '';
  if (user !== '' && !/^\d+$/.test(user) && !facts.users.some((u) => u.name === user)) {
    // Harmless here (servers run as the system's uid, not as USER), but the image is broken for anyone else.
    add(
      'user.unknown',
      'warning',
      `The image's USER is "${user}", but /etc/passwd has no such user; the image would not start outside this hub.`,
    );
  }
  facts.runAs = runAsFacts(fs, config, facts, options.policy);
  for (const finding of runAsFindings(facts, options.policy)) findings.push(finding);
  return { findings, facts };
}

/** The user a server of this image runs as on the system, and whether its home directory is writable for it. */
function runAsFacts(fs: MergedFilesystem, config: ImageConfig, facts: ImageFacts, policy: ImagePolicy): NonNullable<ImageFacts['runAs']> {
  const { uid, gid } = runAsFor(policy, facts);
  const entry = facts.users.find((u) => u.uid === uid);
  // Docker keeps an image's ENV HOME; otherwise HOME comes from /etc/passwd, or is "/" for a uid it does not list.
  const envHome = (config.config?.Env ?? []).find((e) => e.startsWith('HOME='))?.slice(5);
  const home = envHome || entry?.home || '/';
  const resolved = fs.resolve(home);
  const homeWritable = resolved.found && resolved.entry.type === 'dir' && writableBy(resolved.entry, uid, gid);
  return { uid, gid, ...(entry ? { user: entry.name } : {}), home, homeWritable };
}

/** Owner, group or others: the permission bits that apply to `uid`/`gid` allow creating files in the directory. */
function writableBy(entry: { mode: number; uid?: number; gid?: number }, uid: number, gid: number): boolean {
  const bits = (entry.uid ?? 0) === uid ? entry.mode >> 6 : (entry.gid ?? 0) === gid ? entry.mode >> 3 : entry.mode;
  return (bits & 0o3) === 0o3;
}

/** What will happen, in words: who the image would run as, who it runs as here, and whether that user can work. */
export function runAsFindings(facts: ImageFacts, policy: ImagePolicy): Finding[] {
  const runAs = facts.runAs;
  if (!runAs) return [];
  const findings: Finding[] = [];
  const own = imageUid(facts);
  const who = `uid ${runAs.uid}${runAs.user ? ` (${runAs.user})` : ''}, gid ${runAs.gid}`;
  const ownName = facts.users.find((u) => u.uid === own)?.name;
  const imageSays =
    own === 0
      ? 'This image runs as root'
      : own === undefined
        ? `This image names the user "${facts.configUser}"`
        : `This image runs as uid ${own}${ownName ? ` (${ownName})` : ''}`;
  const problems: string[] = [];
  if (!runAs.user)
    problems.push(
      `the image has no user with uid ${runAs.uid} in /etc/passwd${
        facts.users.length
          ? ` (its users: ${facts.users
              .map((u) => `${u.name}=${u.uid}`)
              .slice(0, 8)
              .join(', ')})`
          : ''
      }`,
    );
  if (!runAs.homeWritable)
    problems.push(`the home directory ${runAs.home} is not writable for it, so Jupyter cannot keep its settings or start kernels there`);
  const level = policy.requireUser ? 'error' : 'warning';
  if (own === runAs.uid && problems.length === 0) {
    findings.push({ code: 'user.run_as', level: 'info', message: `Servers run as the image's own user: ${who}, home ${runAs.home}.` });
  } else if (problems.length === 0) {
    findings.push({ code: 'user.run_as', level: 'info', message: `${imageSays}; on this system it runs as ${who}, home ${runAs.home}.` });
  } else {
    findings.push({
      code: runAs.user ? 'user.home_not_writable' : 'user.uid_missing',
      level,
      message: `${imageSays}; on this system it runs as ${who}, and ${problems.join(', and ')}. Add a user with that uid and its own home, e.g. "RUN useradd -m -u ${runAs.uid} -g ${runAs.gid} jovyan"${policy.requireUser ? '; this system requires it' : ''}.`,
    });
  }
  return findings;
}

/** The highest lib/pythonX.Y under `prefix`. */
function pythonVersionUnder(fs: MergedFilesystem, prefix: string): string | undefined {
  const base = `${prefix === '/' ? '' : prefix}/lib/python`;
  const versions = new Set<string>();
  for (const p of fs.paths()) {
    if (p.startsWith(base)) {
      const m = /^(\d+\.\d+)(\/|$)/.exec(p.slice(base.length));
      if (m?.[1]) versions.add(m[1]);
    }
  }
  return [...versions].sort(compareVersions).pop();
}

/** jupyterhub's version from `jupyterhub-X.Y.Z.dist-info` (or egg-info), preferring `prefix`. */
function jupyterhubVersion(fs: MergedFilesystem, prefix: string | undefined): string | undefined {
  const pattern = /\/(?:site|dist)-packages\/jupyterhub-(\d[^/]*?)\.(?:dist-info|egg-info)(?:\/|$)/;
  let fallback: string | undefined;
  for (const p of fs.paths()) {
    const m = pattern.exec(p);
    if (!m?.[1]) continue;
    const version = m[1].replace(/\.dev\d+$/, '');
    if (prefix && p.startsWith(`${prefix === '/' ? '' : prefix}/lib/`)) return version;
    fallback ??= version;
  }
  return fallback;
}

function hasPipModule(fs: MergedFilesystem, prefix: string): boolean {
  const base = `${prefix === '/' ? '' : prefix}/lib/python`;
  for (const p of fs.paths()) {
    if (p.startsWith(base) && /\/(site|dist)-packages\/pip(\/|$)/.test(p)) return true;
  }
  return false;
}

/** What the version rules read of the facts a check found. */
export function ruleInputsOf(facts: ImageFacts): RuleInputs {
  return {
    singleuser: facts.singleuser !== undefined,
    interpreter: facts.interpreter !== undefined,
    pythonVersion: facts.python?.version ?? null,
    jupyterhubVersion: facts.jupyterhubVersion ?? null,
    pip: facts.pip !== undefined,
  };
}

/** pass when nothing is an error; fail otherwise. (error is for checks that could not be made.) */
export function verdictOf(findings: readonly Finding[]): 'pass' | 'fail' {
  return findings.some((f) => f.level === 'error') ? 'fail' : 'pass';
}
