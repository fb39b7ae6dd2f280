// A local-disk cache of blob content for a backend where every read crosses
// the network (S3): the layers a rollout pulls onto many nodes leave the
// bucket once per replica, and go out from local disk (by sendfile) after.
//
// Blobs are immutable and named by digest, so an entry never goes stale. It is
// filled while a whole-blob read streams to its client and kept only when all
// the blob's bytes arrived; past maxsize the least recently used entries go.
// The cache answers only for blobs the store has already found the repository
// links: it holds bytes, never rights.
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { streamRange } from './drivers/filesystem';

export interface BlobCacheOptions {
  rootdirectory: string;
  /** Bytes on disk at most; a blob larger than a quarter of it is not cached. */
  maxsize: number;
}

export interface BlobCacheStats {
  hits: number;
  misses: number;
}

/** Unwritten bytes a fill may hold before it slows its reader down to the disk's pace. */
const MAX_PENDING = 8 << 20;

export class BlobCache {
  readonly stats: BlobCacheStats = { hits: 0, misses: 0 };
  private readonly root: string;
  private readonly maxObject: number;
  /** digest -> size, in recency order; evicting an entry removes its file. */
  private readonly entries: LRUCache<string, number>;
  private readonly filling = new Set<string>();
  private readonly finishing = new Set<Promise<void>>();

  constructor(opts: BlobCacheOptions) {
    this.root = path.resolve(opts.rootdirectory);
    this.maxObject = Math.floor(opts.maxsize / 4);
    this.entries = new LRUCache<string, number>({
      maxSize: opts.maxsize,
      sizeCalculation: (size) => Math.max(1, size),
      dispose: (_size, digest, reason) => {
        if (reason === 'evict' || reason === 'delete') void fsp.rm(this.file(digest), { force: true });
      },
    });
  }

  /** Adopt what an earlier process left (oldest first), drop unfinished fills. */
  async open(): Promise<{ entries: number; bytes: number }> {
    await fsp.rm(path.join(this.root, 'tmp'), { recursive: true, force: true });
    await fsp.mkdir(path.join(this.root, 'tmp'), { recursive: true });
    const found: { digest: string; size: number; mtime: number }[] = [];
    for (const algorithm of await fsp.readdir(this.root)) {
      if (algorithm === 'tmp') continue;
      for (const prefix of await fsp.readdir(path.join(this.root, algorithm)).catch(() => [])) {
        for (const hex of await fsp.readdir(path.join(this.root, algorithm, prefix)).catch(() => [])) {
          const st = await fsp.stat(path.join(this.root, algorithm, prefix, hex)).catch(() => undefined);
          if (st?.isFile()) found.push({ digest: `${algorithm}:${hex}`, size: st.size, mtime: st.mtimeMs });
        }
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) {
      if (f.size <= this.maxObject) this.entries.set(f.digest, f.size);
      else await fsp.rm(this.file(f.digest), { force: true }); // maxsize was lowered
    }
    return this.size;
  }

  /** [start, end) of a cached blob of `size` bytes, or undefined on a miss. */
  async read(digest: string, size: number, start: number, end: number): Promise<Readable | undefined> {
    const cached = this.entries.get(digest);
    if (cached === size) {
      const fh = await fsp.open(this.file(digest), 'r').catch(() => undefined);
      const onDisk = await fh?.stat().then((st) => st.size, () => -1);
      if (fh && onDisk === size) {
        this.stats.hits++;
        return streamRange(fh, start, end);
      }
      await fh?.close();
    }
    // Missing or not the size the store has: whatever is there is wrong.
    if (cached !== undefined) this.entries.delete(digest);
    this.stats.misses++;
    return undefined;
  }

  /**
   * `source` streams a whole blob from the backend: the returned stream passes
   * it on and keeps a copy, which becomes an entry once every byte arrived.
   */
  fill(digest: string, size: number, source: Readable): Readable {
    if (size > this.maxObject || this.filling.has(digest) || this.entries.has(digest)) return source;
    this.filling.add(digest);
    const tmp = path.join(this.root, 'tmp', crypto.randomUUID());
    let finished!: (complete: boolean) => void;
    const done = new Promise<boolean>((resolve) => (finished = resolve))
      .then((complete) => (complete ? this.adopt(tmp, digest, size) : fsp.rm(tmp, { force: true })))
      .catch(() => fsp.rm(tmp, { force: true }))
      .finally(() => {
        this.filling.delete(digest);
        this.finishing.delete(done);
      });
    this.finishing.add(done);
    const copy = new CacheCopy(tmp, size, finished);
    // Errors travel both ways: a client that leaves stops the backend read.
    return pipeline(source, copy, () => undefined);
  }

  /** Fills still being written (tests and shutdown wait for them). */
  async settled(): Promise<void> {
    while (this.finishing.size) await Promise.all(this.finishing);
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.entries.calculatedSize };
  }

  private async adopt(tmp: string, digest: string, size: number): Promise<void> {
    const file = this.file(digest);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.rename(tmp, file);
    this.entries.set(digest, size);
  }

  private file(digest: string): string {
    const [algorithm, hex] = digest.split(':');
    return path.join(this.root, algorithm, hex.slice(0, 2), hex);
  }
}

/**
 * Passes chunks through at once and writes them to `tmp` behind them, holding
 * back only when MAX_PENDING bytes wait for the disk. `finished(complete)` is
 * called once: true when the whole blob is on disk (synced), false otherwise.
 */
class CacheCopy extends Transform {
  private fh?: Promise<fsp.FileHandle>;
  private writing: Promise<unknown> = Promise.resolve();
  private pending = 0;
  private written = 0;
  private failed = false;
  private ended = false;

  constructor(
    private readonly tmp: string,
    private readonly size: number,
    private readonly finished: (complete: boolean) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.failed) {
      this.fh ??= fsp.open(this.tmp, 'w');
      this.pending += chunk.length;
      this.writing = this.writing
        .then(async () => {
          if (this.failed) return;
          await (await this.fh!).write(chunk);
          this.written += chunk.length;
        })
        .catch(() => (this.failed = true))
        .finally(() => (this.pending -= chunk.length));
    }
    if (this.pending < MAX_PENDING) cb(null, chunk);
    else void this.writing.then(() => cb(null, chunk));
  }

  override _flush(cb: TransformCallback): void {
    this.ended = true;
    cb(); // the client has every byte now; the copy finishes in the background
    void this.close(true);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (!this.ended) void this.close(false);
    cb(err);
  }

  private async close(ended: boolean): Promise<void> {
    await this.writing;
    const fh = await this.fh?.catch(() => undefined);
    let complete = ended && !this.failed && fh !== undefined && this.written === this.size;
    try {
      if (complete) await fh!.sync();
    } catch {
      complete = false;
    }
    await fh?.close().catch(() => undefined);
    this.finished(complete);
  }
}
