/**
 * What the package inventory needs of a file, taken while its layer streams
 * by (there is no second pass over an image): the name and version of a
 * Python distribution's metadata, a package database's records, a
 * kernelspec, a venv's `pyvenv.cfg`. A researcher's image is hostile: every
 * collector keeps a bounded amount whatever the file's size (a 2 GB
 * `var/lib/dpkg/status` is read through, line by line, never held), and the
 * layer as a whole keeps at most {@link CAPTURE_LAYER_BYTES}. Pure: chunks
 * in, a small record out.
 */

/** One OS package as a package database records it. */
export interface CapturedPackage {
  name: string;
  version: string;
  arch: string | null;
}

/** A file's useful part, kept in the layer index beside its entry. */
export type Captured =
  /** `*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, an `.egg-info` file: its Name and Version headers. */
  | { kind: 'python-metadata'; name: string | null; version: string | null }
  /** Short texts read whole (INSTALLER, pyvenv.cfg, .pth, .egg-link, patchlevel.h). */
  | { kind: 'text'; text: string; truncated?: true }
  | { kind: 'kernelspec'; displayName: string; language: string }
  /** dpkg's status file or a status.d paragraph file, apk's installed database. */
  | { kind: 'packages'; manager: 'dpkg' | 'apk'; packages: CapturedPackage[]; truncated?: true }
  | { kind: 'conda'; name: string | null; version: string | null; build: string | null; channel: string | null; truncated?: true };

/** How much one layer's captures may keep, in characters of their strings. */
export const CAPTURE_LAYER_BYTES = 32 * 1024 * 1024;
/** The most of a package database read; past it the list is partial (and says so). */
const DATABASE_BYTES = 256 * 1024 * 1024;
/** Records kept of one package database. */
const DATABASE_RECORDS = 200_000;
/** Header block of a metadata file: Name and Version come first in practice, well within this. */
const METADATA_HEADER_BYTES = 64 * 1024;
const TEXT_BYTES = 64 * 1024;
/** A conda-meta record names every file of its package (megabytes for a large one); read through, never held. */
const CONDA_RECORD_BYTES = 256 * 1024 * 1024;
/** Longest field value kept (a name, a version, a channel URL). */
const FIELD_CHARS = 512;
/** Longest line looked at; the rest of a longer one is skipped. */
const LINE_CHARS = 4096;

/** Takes a file's chunks; `end` gives what was kept and how many characters it holds. */
export interface Collector {
  write(chunk: Buffer): void;
  end(): { captured: Captured; size: number };
}

function basenameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function parentName(path: string): string {
  const parent = path.slice(0, path.lastIndexOf('/'));
  return parent.slice(parent.lastIndexOf('/') + 1);
}

/**
 * The collector for a regular file at `path` (normalised, absolute), or
 * undefined for a file the inventory does not read. Called for every file
 * of every layer: cheap tests on the name first.
 */
export function collectorFor(path: string): Collector | undefined {
  const base = basenameOf(path);
  switch (base) {
    case 'METADATA':
    case 'PKG-INFO': {
      const parent = parentName(path);
      return parent.endsWith('.dist-info') || parent.endsWith('.egg-info') ? metadataCollector() : undefined;
    }
    case 'INSTALLER':
      return parentName(path).endsWith('.dist-info') ? textCollector(256) : undefined;
    case 'status':
      return path === '/var/lib/dpkg/status' ? packagesCollector('dpkg') : undefined;
    case 'installed':
      return path === '/lib/apk/db/installed' ? packagesCollector('apk') : undefined;
    case 'kernel.json':
      return /\/share\/jupyter\/kernels\/[^/]+\/kernel\.json$/.test(path) ? kernelspecCollector() : undefined;
    case 'pyvenv.cfg':
      return textCollector(TEXT_BYTES);
    case 'site.py':
      return /\/lib(?:64)?\/python\d+\.\d+\/site\.py$/.test(path) ? markerCollector('dist-packages') : undefined;
    case 'patchlevel.h':
      return /\/include\/python\d+\.\d+[a-z]*\/patchlevel\.h$/.test(path) ? patchlevelCollector() : undefined;
    default:
      break;
  }
  if (base.endsWith('.egg-info')) return metadataCollector();
  if (base.endsWith('.pth') || base.endsWith('.egg-link')) return path.includes('-packages/') ? textCollector(TEXT_BYTES) : undefined;
  if (base.endsWith('.json') && parentName(path) === 'conda-meta') return condaCollector();
  // distroless: one paragraph file per package (and its .md5sums beside it).
  if (path.startsWith('/var/lib/dpkg/status.d/') && path.lastIndexOf('/') === 22 && !base.endsWith('.md5sums'))
    return packagesCollector('dpkg');
  return undefined;
}

/**
 * Splits chunks into lines (latin1: byte-exact and never throws), each cut
 * to {@link LINE_CHARS}; stops being fed after `limit` bytes.
 */
class Lines {
  private partial = '';
  private skipping = false;
  /** The collector said it has what it wants. */
  private done = false;
  bytes = 0;
  /** The file went on past the limit. */
  truncated = false;

  constructor(
    private readonly limit: number,
    /** Given each line; false when the collector wants no more. */
    private readonly onLine: (line: string) => boolean,
  ) {}

  /** False once it wants no more. */
  write(chunk: Buffer): boolean {
    if (this.done || this.truncated) return false;
    let data = chunk;
    if (this.bytes + data.length > this.limit) {
      data = data.subarray(0, this.limit - this.bytes);
      this.truncated = true;
    }
    this.bytes += data.length;
    let start = 0;
    for (;;) {
      const nl = data.indexOf(10, start);
      if (nl === -1) break;
      const line = this.take(data, start, nl);
      start = nl + 1;
      if (this.onLine(line) === false) {
        this.truncated = false;
        this.done = true;
        return false;
      }
    }
    if (start < data.length) {
      if (!this.skipping) {
        this.partial += data.toString('latin1', start, Math.min(data.length, start + LINE_CHARS - this.partial.length));
        if (this.partial.length >= LINE_CHARS) this.skipping = true;
      }
    }
    return !this.truncated;
  }

  private take(data: Buffer, start: number, end: number): string {
    let line = this.partial;
    if (!this.skipping) line += data.toString('latin1', start, Math.min(end, start + LINE_CHARS - line.length));
    this.partial = '';
    this.skipping = false;
    return line.endsWith('\r') ? line.slice(0, -1) : line;
  }

  /** The last line, if the file did not end with a newline. */
  end(): void {
    if (this.done) return;
    if (this.partial !== '' && !this.truncated) this.onLine(this.partial.endsWith('\r') ? this.partial.slice(0, -1) : this.partial);
    this.partial = '';
  }
}

/** latin1 lines back to text: the files are UTF-8. */
function utf8(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

function field(value: string): string {
  return value.trim().slice(0, FIELD_CHARS);
}

/** RFC 822 headers up to the first empty line: `Name` and `Version`, first of each (as email.message's `get` returns). */
function metadataCollector(): Collector {
  let name: string | null = null;
  let version: string | null = null;
  const lines = new Lines(METADATA_HEADER_BYTES, (line) => {
    if (line === '') return false;
    const colon = line.indexOf(':');
    if (colon <= 0 || line.startsWith(' ') || line.startsWith('\t')) return true;
    const key = line.slice(0, colon).toLowerCase();
    if (key === 'name' && name === null) name = field(utf8(line.slice(colon + 1)));
    else if (key === 'version' && version === null) version = field(utf8(line.slice(colon + 1)));
    return name === null || version === null;
  });
  return {
    write: (chunk) => void lines.write(chunk),
    end: () => {
      lines.end();
      return { captured: { kind: 'python-metadata', name, version }, size: (name ?? '').length + (version ?? '').length + 16 };
    },
  };
}

function textCollector(limit: number): Collector {
  const chunks: Buffer[] = [];
  let kept = 0;
  let truncated = false;
  return {
    write(chunk) {
      if (kept >= limit) {
        truncated ||= chunk.length > 0;
        return;
      }
      const part = chunk.subarray(0, limit - kept);
      if (part.length < chunk.length) truncated = true;
      chunks.push(part);
      kept += part.length;
    },
    end() {
      const text = Buffer.concat(chunks).toString('utf8');
      return { captured: truncated ? { kind: 'text', text, truncated } : { kind: 'text', text }, size: text.length + 16 };
    },
  };
}

/**
 * Whether the file holds `marker` (kept as the text, else ''): Debian's
 * site.py names dist-packages, CPython's does not, and that decides where
 * the interpreter looks for packages.
 */
function markerCollector(marker: string): Collector {
  let found = false;
  const lines = new Lines(TEXT_BYTES * 4, (line) => {
    found = line.includes(marker);
    return !found;
  });
  return {
    write: (chunk) => void lines.write(chunk),
    end: () => {
      lines.end();
      return { captured: { kind: 'text', text: found ? marker : '' }, size: marker.length + 16 };
    },
  };
}

/** `#define PY_VERSION "3.11.4"`: only that line is kept. */
function patchlevelCollector(): Collector {
  let version = '';
  const lines = new Lines(TEXT_BYTES, (line) => {
    const m = /^#define\s+PY_VERSION\s+"([^"]{1,64})"/.exec(line);
    if (!m?.[1]) return true;
    version = m[1];
    return false;
  });
  return {
    write: (chunk) => void lines.write(chunk),
    end: () => {
      lines.end();
      return { captured: { kind: 'text', text: version }, size: version.length + 16 };
    },
  };
}

function kernelspecCollector(): Collector {
  const text = textCollector(TEXT_BYTES);
  return {
    write: text.write,
    end() {
      const { captured } = text.end();
      let displayName = '';
      let language = '';
      try {
        const spec = JSON.parse(captured.kind === 'text' ? captured.text : '') as { display_name?: unknown; language?: unknown };
        if (typeof spec.display_name === 'string') displayName = spec.display_name.slice(0, FIELD_CHARS);
        if (typeof spec.language === 'string') language = spec.language.slice(0, FIELD_CHARS);
      } catch {
        // Not JSON (or cut at the bound): Jupyter would skip it; the directory name still shows.
      }
      return { captured: { kind: 'kernelspec', displayName, language }, size: displayName.length + language.length + 16 };
    },
  };
}

/**
 * dpkg's status (Package/Version/Architecture/Status paragraphs; what
 * `dpkg-query -W` lists: every package not in the state not-installed) and
 * apk's installed database (P:/V:/A: records). Read line by line; only the
 * current record's few fields are held.
 */
function packagesCollector(manager: 'dpkg' | 'apk'): Collector {
  const packages: CapturedPackage[] = [];
  let size = 0;
  let dropped = false;
  let name = '';
  let version = '';
  let arch: string | null = null;
  let state = '';
  const flush = () => {
    if (name !== '' && version !== '' && state !== 'not-installed') {
      if (packages.length < DATABASE_RECORDS) {
        packages.push({ name, version, arch });
        size += name.length + version.length + (arch?.length ?? 0) + 24;
      } else dropped = true;
    }
    name = '';
    version = '';
    arch = null;
    state = '';
  };
  const lines = new Lines(DATABASE_BYTES, (line) => {
    if (line === '') {
      flush();
      return true;
    }
    if (manager === 'apk') {
      if (line[1] !== ':') return true;
      const value = field(utf8(line.slice(2)));
      if (line[0] === 'P') {
        // A record starts with its P: line; a database without blank lines still splits.
        if (name !== '') flush();
        name = value;
      } else if (line[0] === 'V') version = value;
      else if (line[0] === 'A') arch = value;
      return true;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) return true;
    const colon = line.indexOf(':');
    if (colon <= 0) return true;
    const key = line.slice(0, colon);
    const value = field(utf8(line.slice(colon + 1)));
    if (key === 'Package') name = value;
    else if (key === 'Version') version = value;
    else if (key === 'Architecture') arch = value;
    else if (key === 'Status') state = value.split(/\s+/)[2] ?? '';
    return true;
  });
  return {
    write: (chunk) => void lines.write(chunk),
    end() {
      lines.end();
      flush();
      const truncated = lines.truncated || dropped;
      return { captured: { kind: 'packages', manager, packages, ...(truncated ? { truncated: true as const } : {}) }, size };
    },
  };
}

/** The top-level keys of a conda-meta record that the inventory keeps. */
const CONDA_KEYS = new Set(['name', 'version', 'build', 'channel', 'url']);

/**
 * A conda-meta record is JSON whose top-level `files` and `paths_data` list
 * every file of the package: scanned byte by byte, keeping only the string
 * values of a few top-level keys, so that its size costs time, not memory.
 */
function condaCollector(): Collector {
  const found: Record<string, string> = {};
  let depth = 0;
  let inString = false;
  let escaped = false;
  let current = '';
  let collecting = false;
  /** The last top-level key read, waiting for its value. */
  let key: string | null = null;
  let expectingKey = false;
  let bytes = 0;
  let truncated = false;
  const write = (chunk: Buffer) => {
    if (truncated) return;
    let data = chunk;
    if (bytes + data.length > CONDA_RECORD_BYTES) {
      data = data.subarray(0, CONDA_RECORD_BYTES - bytes);
      truncated = true;
    }
    bytes += data.length;
    for (let i = 0; i < data.length; i++) {
      const c = data[i] as number;
      if (inString) {
        if (escaped) {
          escaped = false;
          if (collecting && current.length < FIELD_CHARS) current += c === 0x6e ? '\n' : String.fromCharCode(c);
        } else if (c === 0x5c) escaped = true;
        else if (c === 0x22) {
          inString = false;
          if (depth === 1) {
            if (expectingKey) {
              key = current;
              expectingKey = false;
            } else if (key !== null) {
              if (CONDA_KEYS.has(key)) found[key] = utf8(current);
              key = null;
            }
          }
          collecting = false;
        } else if (collecting && current.length < FIELD_CHARS) current += String.fromCharCode(c);
        continue;
      }
      if (c === 0x22) {
        inString = true;
        current = '';
        collecting = depth === 1 && (expectingKey || (key !== null && CONDA_KEYS.has(key)));
      } else if (c === 0x7b || c === 0x5b) {
        depth++;
        if (depth === 1) expectingKey = true;
      } else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (depth === 1) key = null;
      } else if (depth === 1 && c === 0x2c) {
        expectingKey = true;
        key = null;
      }
    }
  };
  return {
    write,
    end() {
      const captured: Captured = {
        kind: 'conda',
        name: found.name ?? null,
        version: found.version ?? null,
        build: found.build ?? null,
        channel: found.channel ?? found.url ?? null,
        ...(truncated ? { truncated: true as const } : {}),
      };
      return { captured, size: Object.values(found).reduce((s, v) => s + v.length, 0) + 32 };
    },
  };
}
