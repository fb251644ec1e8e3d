/**
 * Images the tests build themselves: tar layers written with tar-stream,
 * compressed with gzip, zstd or not at all, pushed with the distribution API
 * (monolithic blob uploads, then the manifest), as `docker push` would.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export interface FileSpec {
  type?: 'file' | 'dir' | 'symlink' | 'hardlink';
  content?: string | Buffer;
  mode?: number;
  /** Link target. */
  target?: string;
  /** Owner and group (root when not given). */
  uid?: number;
  gid?: number;
}
/** path -> file; a string is a regular file with that content, mode 0644. */
export type LayerFiles = Record<string, FileSpec | string>;
export type Compression = 'gzip' | 'zstd' | 'none';

export interface LayerSpec {
  files: LayerFiles;
  compression?: Compression;
}

/** A layer already on disk (gzip'd tar), e.g. the cached Debian root filesystem. */
export interface LayerFile {
  path: string;
}

export interface ImageSpec {
  layers: Array<LayerSpec | LayerFile>;
  env?: string[];
  user?: string;
  /** VOLUME paths of the image's config. */
  volumes?: string[];
  platform?: string;
  /** Docker media types instead of OCI. */
  docker?: boolean;
  /** Build triggers in the config (`OnBuild`), as an ONBUILD line leaves them. */
  onBuild?: string[];
}

/** The OCI digest of some bytes. */
export const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A tar of `files`, parents first, as docker build writes them. */
export async function layerTar(files: LayerFiles): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  // A fixed mtime: the same files make the same layer digest, as with reproducible builds.
  const mtime = new Date(0);
  for (const [path, spec0] of Object.entries(files)) {
    const spec: FileSpec = typeof spec0 === 'string' ? { content: spec0 } : spec0;
    const name = path.replace(/^\//, '');
    const type = spec.type ?? 'file';
    const owner = { uid: spec.uid ?? 0, gid: spec.gid ?? 0 };
    if (type === 'dir') pack.entry({ name, type: 'directory', mode: spec.mode ?? 0o755, mtime, ...owner });
    else if (type === 'symlink') pack.entry({ name, type: 'symlink', linkname: spec.target ?? '', mode: 0o777, mtime, ...owner });
    else if (type === 'hardlink')
      pack.entry({ name, type: 'link', linkname: (spec.target ?? '').replace(/^\//, ''), mode: spec.mode ?? 0o755, mtime, ...owner });
    else pack.entry({ name, mode: spec.mode ?? 0o644, mtime, ...owner }, Buffer.from(spec.content ?? ''));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function compress(data: Buffer, compression: Compression): Buffer {
  if (compression === 'gzip') return gzipSync(data);
  if (compression === 'zstd') return execFileSync('zstd', ['-q', '-c', '-3'], { input: data, maxBuffer: 1 << 30 });
  return data;
}

const OCI = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: {
    gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
    zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
    none: 'application/vnd.oci.image.layer.v1.tar',
  },
};
const DOCKER = {
  manifest: 'application/vnd.docker.distribution.manifest.v2+json',
  index: 'application/vnd.docker.distribution.manifest.list.v2+json',
  config: 'application/vnd.docker.container.image.v1+json',
  layer: {
    gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
    zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
    none: 'application/vnd.docker.image.rootfs.diff.tar',
  },
};

/** Uploads a blob (monolithic) unless the registry has it. */
export async function pushBlob(registry: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const head = await fetch(`http://${registry}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.ok) return digest;
  const start = await fetch(`http://${registry}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`upload start ${start.status}: ${await start.text()}`);
  const location = new URL(start.headers.get('location') ?? '', `http://${registry}`);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: new Uint8Array(data) });
  if (put.status !== 201) throw new Error(`upload ${put.status}: ${await put.text()}`);
  return digest;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return `sha256:${hash.digest('hex')}`;
}

/** The digest of a gzip'd layer's uncompressed tar (its diff id), kept beside it as FILE.diffid. */
export async function diffIdOf(file: string): Promise<string> {
  const cached = `${file}.diffid`;
  if (fs.existsSync(cached) && fs.statSync(cached).mtimeMs >= fs.statSync(file).mtimeMs) return fs.readFileSync(cached, 'utf8').trim();
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), createGunzip(), hash);
  const digest = `sha256:${hash.digest('hex')}`;
  fs.writeFileSync(cached, digest);
  return digest;
}

/** Streams a file as a blob upload unless the registry has it (in `repo`, or in `mountFrom`, from where it is mounted). */
export async function pushBlobFile(
  registry: string,
  repo: string,
  file: string,
  mountFrom?: string,
): Promise<{ digest: string; size: number }> {
  const digest = await sha256File(file);
  const size = fs.statSync(file).size;
  const head = await fetch(`http://${registry}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.ok) return { digest, size };
  const start = await fetch(`http://${registry}/v2/${repo}/blobs/uploads/${mountFrom ? `?mount=${digest}&from=${mountFrom}` : ''}`, {
    method: 'POST',
  });
  // Mounted: the registry had it in `mountFrom`. Otherwise (202) it opened an upload.
  if (start.status === 201) return { digest, size };
  const location = new URL(start.headers.get('location') ?? '', `http://${registry}`);
  location.searchParams.set('digest', digest);
  const body = Readable.toWeb(fs.createReadStream(file)) as ReadableStream;
  const put = await fetch(location, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
    body,
    duplex: 'half',
  } as RequestInit);
  if (put.status !== 201) throw new Error(`upload ${put.status}: ${await put.text()}`);
  return { digest, size };
}

export async function pushManifest(registry: string, repo: string, ref: string, mediaType: string, body: Buffer): Promise<string> {
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { 'Content-Type': mediaType },
    body: new Uint8Array(body),
  });
  if (res.status !== 201) throw new Error(`manifest ${res.status}: ${await res.text()}`);
  return sha256(body);
}

/** Builds and pushes one image; returns its manifest digest and size. */
export async function pushImage(
  registry: string,
  repo: string,
  tag: string | undefined,
  spec: ImageSpec,
  /** A repository of the same registry that holds the layers given by path already: they are mounted from there. */
  options: { mountFrom?: string } = {},
): Promise<{ digest: string; manifest: Buffer; size: number }> {
  const types = spec.docker ? DOCKER : OCI;
  const [os = 'linux', architecture = 'amd64', variant] = (spec.platform ?? 'linux/amd64').split('/');
  const layers = [];
  const diffIds = [];
  for (const layer of spec.layers) {
    if ('path' in layer) {
      const pushed = await pushBlobFile(registry, repo, layer.path, options.mountFrom);
      // Docker checks rootfs.diff_ids (the uncompressed tar's digest) when it pulls.
      diffIds.push(await diffIdOf(layer.path));
      layers.push({ mediaType: types.layer.gzip, ...pushed });
      continue;
    }
    const raw = await layerTar(layer.files);
    const compression = layer.compression ?? 'gzip';
    const blob = compress(raw, compression);
    diffIds.push(sha256(raw));
    layers.push({ mediaType: types.layer[compression], digest: await pushBlob(registry, repo, blob), size: blob.length });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture,
      os,
      ...(variant ? { variant } : {}),
      config: {
        Env: spec.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        User: spec.user ?? '',
        Cmd: ['jupyterhub-singleuser'],
        ...(spec.volumes ? { Volumes: Object.fromEntries(spec.volumes.map((v) => [v, {}])) } : {}),
        ...(spec.onBuild ? { OnBuild: spec.onBuild } : {}),
      },
      rootfs: { type: 'layers', diff_ids: diffIds },
    }),
  );
  const configDigest = await pushBlob(registry, repo, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: { mediaType: types.config, digest: configDigest, size: config.length },
      layers,
    }),
  );
  const digest = await pushManifest(registry, repo, tag ?? sha256(manifest), types.manifest, manifest);
  return { digest, manifest, size: manifest.length };
}

/**
 * Tags an image pushed to `from` in another repository as well, without
 * uploading again: its blobs are mounted across repositories (the
 * distribution spec's `?mount=&from=`), then the manifest is put.
 */
export async function copyImage(registry: string, from: string, to: string, tag: string, manifest: Buffer): Promise<void> {
  const body = JSON.parse(manifest.toString('utf8')) as {
    mediaType: string;
    config: { digest: string };
    layers: Array<{ digest: string }>;
  };
  for (const { digest } of [body.config, ...body.layers]) await mountBlob(registry, from, to, digest);
  await pushManifest(registry, to, tag, body.mediaType, manifest);
}

/** Makes a blob of repository `from` part of `to` as well, without uploading it again. */
export async function mountBlob(registry: string, from: string, to: string, digest: string): Promise<void> {
  const res = await fetch(`http://${registry}/v2/${to}/blobs/uploads/?mount=${digest}&from=${from}`, { method: 'POST' });
  if (res.status !== 201) throw new Error(`mount ${digest} into ${to}: ${res.status} ${await res.text()}`);
}

/** Pushes one image per platform and an index over them under `tag`. */
export async function pushIndex(registry: string, repo: string, tag: string, images: ImageSpec[]): Promise<string> {
  const manifests = [];
  for (const spec of images) {
    const pushed = await pushImage(registry, repo, undefined, spec);
    const [os = 'linux', architecture = 'amd64', variant] = (spec.platform ?? 'linux/amd64').split('/');
    manifests.push({
      mediaType: OCI.manifest,
      digest: pushed.digest,
      size: pushed.size,
      platform: { os, architecture, ...(variant ? { variant } : {}) },
    });
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.index, manifests }));
  return pushManifest(registry, repo, tag, OCI.index, index);
}

/** The files of a minimal Python with JupyterHub, for images that should pass. */
export function pythonWithJupyterhub(options: { prefix?: string; python?: string; jupyterhub?: string; users?: string } = {}): LayerFiles {
  const prefix = options.prefix ?? '/usr';
  const python = options.python ?? '3.11';
  const site = prefix === '/usr' ? '/usr/lib/python3/dist-packages' : `${prefix}/lib/python${python}/site-packages`;
  return {
    '/etc/passwd': options.users ?? 'root:x:0:0:root:/root:/bin/bash\njovyan:x:1000:100::/home/jovyan:/bin/bash\n',
    ...(options.users ? {} : { '/home/jovyan': { type: 'dir', mode: 0o755, uid: 1000, gid: 100 } }),
    [`${prefix}/bin/python${python}`]: { content: '\u007fELF\u0002\u0001\u0001 fake python', mode: 0o755 },
    [`${prefix}/bin/python3`]: { type: 'symlink', target: `python${python}` },
    [`${prefix}/bin/pip3`]: { content: `#!${prefix}/bin/python${python}\nimport pip\n`, mode: 0o755 },
    [`${prefix}/lib/python${python}/os.py`]: '# the standard library\n',
    [`${site}/jupyterhub-${options.jupyterhub ?? '3.0.0'}.dist-info/METADATA`]: `Name: jupyterhub\nVersion: ${options.jupyterhub ?? '3.0.0'}\n`,
    [`${site}/jupyterhub/__init__.py`]: '',
  };
}

/** jupyterhub-singleuser as pip installs it. */
export function singleuserScript(interpreter: string): FileSpec {
  return {
    content: `#!${interpreter}\n# -*- coding: utf-8 -*-\nimport sys\nfrom jupyterhub.singleuser import main\nsys.exit(main())\n`,
    mode: 0o755,
  };
}

/** An image that passes the static check: Python with JupyterHub, and jupyterhub-singleuser in /usr/local/bin. */
export function passingImage(): ImageSpec {
  return {
    layers: [
      { files: pythonWithJupyterhub() },
      { files: { '/usr/local/bin/jupyterhub-singleuser': singleuserScript('/usr/bin/python3') } },
    ],
  };
}
