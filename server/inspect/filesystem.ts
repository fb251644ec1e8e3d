/**
 * The image's final filesystem as a path index: layers applied in order with
 * their whiteouts and opaque directories (OCI image spec, "Applying
 * changesets"), and path resolution that follows symlinks the way the kernel
 * does inside the container. Pure.
 */
import type { Entry, LayerIndex } from './layerIndex.js';

const MAX_SYMLINKS = 40;

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** What resolving a path found. */
export type Resolution =
  | { found: true; path: string; entry: Entry; via: string[] }
  | { found: false; path: string; reason: 'missing' | 'loop' | 'not_a_directory'; via: string[] };

/** The merged filesystem of an image. */
export class MergedFilesystem {
  private readonly entries = new Map<string, Entry>();
  private implicitDirs: Set<string> | undefined;

  /** Applies one layer on top of what is there. */
  apply(layer: LayerIndex): void {
    this.implicitDirs = undefined;
    const hidden = [...layer.whiteouts];
    const opaque = layer.opaque;
    // A non-directory replacing a directory hides what was below it, too.
    for (const [path, entry] of Object.entries(layer.entries)) {
      const below = this.entries.get(path);
      if (below?.type === 'dir' && entry.type !== 'dir') hidden.push(path);
    }
    if (hidden.length > 0 || opaque.length > 0) {
      const hiddenSet = new Set(hidden);
      const opaqueSet = new Set(opaque);
      for (const path of [...this.entries.keys()]) {
        if (this.isHidden(path, hiddenSet, opaqueSet)) this.entries.delete(path);
      }
    }
    for (const [path, entry] of Object.entries(layer.entries)) {
      if (entry.type === 'hardlink' && entry.link) {
        // A hard link is the same file: take its target's mode and content.
        const target = layer.entries[entry.link] ?? this.entries.get(entry.link);
        this.entries.set(path, target ? { ...target } : { ...entry, type: 'file' });
      } else {
        this.entries.set(path, entry);
      }
    }
  }

  /** Whiteouts hide the path and what is under it; opaque directories hide what is under them. */
  private isHidden(path: string, hidden: Set<string>, opaque: Set<string>): boolean {
    if (hidden.has(path)) return true;
    for (let dir = parentOf(path); ; dir = parentOf(dir)) {
      if (hidden.has(dir) || opaque.has(dir)) return true;
      if (dir === '/') return false;
    }
  }

  /** The entry at exactly `path` (no symlinks followed); directories implied by their contents count. */
  get(path: string): Entry | undefined {
    const entry = this.entries.get(path);
    if (entry) return entry;
    if (path === '/' || this.implied().has(path)) return { type: 'dir', mode: 0o755, size: 0 };
    return undefined;
  }

  /** Every path, for searches such as package metadata. */
  paths(): IterableIterator<string> {
    return this.entries.keys();
  }

  get size(): number {
    return this.entries.size;
  }

  private implied(): Set<string> {
    if (!this.implicitDirs) {
      const dirs = new Set<string>();
      for (const path of this.entries.keys()) {
        for (let dir = parentOf(path); dir !== '/' && !dirs.has(dir); dir = parentOf(dir)) dirs.add(dir);
      }
      this.implicitDirs = dirs;
    }
    return this.implicitDirs;
  }

  /**
   * Resolves `path` inside the image, following symlinks in every component
   * (absolute targets from the image's root, relative ones from the link's
   * directory) and, if `followLast`, in the last component too.
   */
  resolve(path: string, followLast = true): Resolution {
    const via: string[] = [];
    let pending = path.split('/').filter((p) => p !== '' && p !== '.');
    let current = '/';
    let links = 0;
    while (pending.length > 0) {
      const part = pending.shift() as string;
      if (part === '..') {
        current = parentOf(current);
        continue;
      }
      const next = current === '/' ? `/${part}` : `${current}/${part}`;
      const entry = this.get(next);
      if (!entry) return { found: false, path: next, reason: 'missing', via };
      const isLast = pending.length === 0;
      if (entry.type === 'symlink' && (!isLast || followLast)) {
        if (++links > MAX_SYMLINKS) return { found: false, path: next, reason: 'loop', via };
        const target = entry.link ?? '';
        via.push(`${next} -> ${target}`);
        pending = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
        current = target.startsWith('/') ? '/' : current;
        continue;
      }
      if (!isLast && entry.type !== 'dir') return { found: false, path: next, reason: 'not_a_directory', via };
      current = next;
    }
    const entry = this.get(current);
    if (!entry) return { found: false, path: current, reason: 'missing', via };
    return { found: true, path: current, entry, via };
  }
}
