// Link files (tags, revisions, layer links: a digest in a small file) read
// through a short-lived cache. Facts another replica can change are trusted
// for `ttlMs` only; concurrent misses of one path share one read; what this
// process writes or deletes replaces what a read in flight would bring.
import { LRUCache } from 'lru-cache';
import type { Digest } from './digest';
import { isNotFound, type StorageDriver } from './driver';

/** Lookups answered from an in-process cache (hits) or the backend (misses). */
export interface CacheStats {
  hits: number;
  misses: number;
}

/** Bytes of the link cache (README, Memory). */
const LINK_CACHE_BYTES = 2 * 1024 * 1024;

/** An entry's cost in a cache keyed by path: its key and value plus ~128 bytes of the cache's bookkeeping. */
export const entryBytes = (value: unknown, key: string) => key.length + (typeof value === 'string' ? value.length : 8) + 128;

export class Links {
  private readonly cache: LRUCache<string, string>;
  private readonly reads = new Map<string, Promise<string>>();

  constructor(
    private readonly driver: StorageDriver,
    ttlMs: number,
    private readonly stats: CacheStats,
    /** Called after every write (a link may have created a repository). */
    private readonly onWrite: () => void,
  ) {
    this.cache = new LRUCache<string, string>({ maxSize: LINK_CACHE_BYTES, sizeCalculation: entryBytes, ttl: Math.max(1, ttlMs) });
  }

  /** The cached target of a link, without I/O: '' for known missing, undefined when not cached. */
  peek(path: string): string | undefined {
    return this.cache.get(path);
  }

  /**
   * The digest a link file points to, or undefined when it is missing. Misses
   * of one path share one read: when a hot tag's entry expires, the requests
   * in flight wait for one getContent instead of each issuing their own.
   * `fresh` reads now, past the cache and any read begun earlier.
   */
  async read(path: string, fresh = false): Promise<string | undefined> {
    if (!fresh) {
      const cached = this.cache.get(path);
      this.stats[cached === undefined ? 'misses' : 'hits']++;
      if (cached !== undefined) return cached || undefined;
      const pending = this.reads.get(path);
      if (pending) return pending;
    }
    const read = (async () => {
      try {
        return (await this.driver.getContent(path)).toString('utf8').trim();
      } catch (e) {
        if (!isNotFound(e)) throw e;
        return '';
      }
    })();
    this.reads.set(path, read);
    try {
      const target = await read;
      // A write or delete since this read began has superseded it.
      if (this.reads.get(path) === read) this.cache.set(path, target);
      return target || undefined;
    } finally {
      if (this.reads.get(path) === read) this.reads.delete(path);
    }
  }

  /** What this process just wrote (or '' for removed): reads in flight must not overwrite it. */
  set(path: string, target: string): void {
    this.reads.delete(path);
    this.cache.set(path, target);
  }

  /**
   * Make the link point at d; true when it had to be written. `touch` writes it
   * even when it is already there: a commit refreshes its link's age, which the
   * collector's final re-check reads (storage/GC.md).
   */
  async write(path: string, d: Digest, touch = false): Promise<boolean> {
    if (!touch && (await this.readFresh(path)) === d.value) return false;
    await this.driver.putContent(path, Buffer.from(d.value));
    this.set(path, d.value);
    this.onWrite();
    return true;
  }

  async readFresh(path: string): Promise<string | undefined> {
    return this.read(path, true);
  }

  /** Delete a file or tree, forgetting what is cached under it; false when nothing was there. */
  async deleteTree(path: string): Promise<boolean> {
    try {
      await this.driver.delete(path);
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    } finally {
      // Forgotten once the delete is done: a read begun while it ran (a tag
      // listing, the index summarising the repository) may have cached a link
      // the delete then removed. Deletes are rare: a scan of the cache is fine.
      const under = (k: string) => k === path || k.startsWith(`${path}/`);
      for (const k of this.cache.keys()) if (under(k)) this.cache.delete(k);
      for (const k of this.reads.keys()) if (under(k)) this.reads.delete(k);
    }
  }
}
