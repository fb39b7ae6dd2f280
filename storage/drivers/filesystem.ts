// The filesystem driver: keys map to files under a root directory. Atomic
// replacement is write-to-temp + fsync + rename in the same directory.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  InvalidOffsetError,
  PathNotFoundError,
  WriteLostError,
  type FileInfo,
  type FileWriter,
  type ListPage,
  type StorageDriver,
  withLocalFile,
} from '../driver';

export interface FilesystemOptions {
  rootdirectory: string;
  /** A registry that never writes (storage.maintenance.readonly): the root is not created, and only reading it is checked. */
  readonly?: boolean;
}

/**
 * mkdir -p without Node's recursive mkdir, which loops forever (at full CPU)
 * where mkdir answers ENOENT below a parent that exists, as under /proc.
 */
function makeDirs(dir: string): void {
  try {
    fs.mkdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && fs.statSync(dir).isDirectory()) return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw e;
    makeDirs(parent);
    try {
      fs.mkdirSync(dir); // ENOENT again with the parent there: this place takes no directories
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code !== 'EEXIST') throw e2;
    }
  }
}

// Small appends are gathered into one write() of up to this many bytes. An
// upload holds up to two batches (one filling, one being written): at 1 MiB,
// 32 concurrent uploads held 64 MiB. At 256 KiB the extra trips to the thread
// pool cost a loaded machine 20-40 % of push throughput (A/B, same run).
const WRITE_BATCH = 512 << 10;
/** Directory entries read per batch by scan(). */
const SCAN_BATCH = 64;
/** A background datasync starts each time a file grows past a multiple of this. */
const SYNC_EVERY = 4 << 20;

/** fsync (or fdatasync) a file; when that fails the disk may not hold what was written to it. */
async function flushToDisk(fh: fsp.FileHandle, file: string, how: 'sync' | 'datasync'): Promise<void> {
  try {
    await fh[how]();
  } catch (e) {
    throw new WriteLostError(file, e);
  }
}

/**
 * Stream [start, end) of an open file, which the stream then owns (closes).
 * It carries the descriptor (localFile), so the range may go out by sendfile.
 */
export async function streamRange(fh: fsp.FileHandle, start: number, end: number): Promise<Readable> {
  // Node 20 rejects end: -1, so an empty range is an empty stream.
  if (start === end) {
    await fh.close();
    return Readable.from([]);
  }
  const stream = fh.createReadStream({ start, end: end - 1, highWaterMark: 256 * 1024 });
  return withLocalFile(stream, { fd: fh.fd, start, end });
}

function notFound(e: unknown, p: string): never {
  if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') {
    throw new PathNotFoundError(p);
  }
  throw e;
}

export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  private readonly root: string;
  /** Files whose background datasync failed after their writer closed, with the error. */
  private readonly lostSyncs = new Map<string, unknown>();

  private readonly readOnly: boolean;

  constructor(opts: FilesystemOptions) {
    this.root = path.resolve(opts.rootdirectory);
    this.readOnly = opts.readonly ?? false;
    if (!this.readOnly) makeDirs(this.root);
  }

  private full(p: string): string {
    if (!p.startsWith('/') || p.split('/').some((c) => c === '..' || c === '.')) {
      throw new Error(`invalid storage path ${JSON.stringify(p)}`);
    }
    return path.join(this.root, p);
  }

  async getContent(p: string): Promise<Buffer> {
    try {
      return await fsp.readFile(this.full(p));
    } catch (e) {
      notFound(e, p);
    }
  }

  async putContent(p: string, content: Buffer): Promise<void> {
    const file = this.full(p);
    if (content.length === 0) return this.putEmpty(file);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${crypto.randomBytes(6).toString('hex')}`;
    const fh = await fsp.open(tmp, 'w');
    try {
      try {
        await fh.writeFile(content);
        await flushToDisk(fh, file, 'sync');
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, file);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
  }

  /**
   * An empty file (an index marker) is created whole or not at all, so it
   * needs no temporary file; and no fsync of its own: creating it is a
   * metadata change, which a journaling filesystem (ext4, XFS) commits in
   * order, with the next fsync of anything on it (the link the marker
   * precedes). It costs an open and a close instead of a rename and a journal commit.
   */
  private async putEmpty(file: string): Promise<void> {
    const create = async () => (await fsp.open(file, 'w')).close();
    try {
      await create();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await create();
    }
  }

  async reader(p: string, offset = 0, end?: number): Promise<Readable> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.full(p), 'r');
    } catch (e) {
      notFound(e, p);
    }
    let stop: number;
    try {
      const size = (await fh.stat()).size;
      stop = end ?? size;
      if (offset < 0 || offset > size || stop > size || stop < offset) throw new InvalidOffsetError(p, offset);
    } catch (e) {
      await fh.close();
      throw e;
    }
    return streamRange(fh, offset, stop);
  }

  async writer(p: string, append: boolean): Promise<FileWriter> {
    const file = this.full(p);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, append ? 'a' : 'w');
    } catch (e) {
      notFound(e, p);
    }
    const lost = this.lostSyncs.get(file);
    this.lostSyncs.delete(file);
    if (lost !== undefined && append) {
      await fh.close();
      throw lost; // the disk may not have kept what an earlier writer wrote: start over
    }
    const size = (await fh.stat()).size;
    return new FilesystemWriter(fh, file, size, (e) => this.lostSyncs.set(file, e));
  }

  async stat(p: string): Promise<FileInfo> {
    try {
      const st = await fsp.stat(this.full(p));
      return { path: p, size: st.isDirectory() ? 0 : st.size, modTime: st.mtime, isDir: st.isDirectory() };
    } catch (e) {
      notFound(e, p);
    }
  }

  async list(p: string): Promise<string[]> {
    try {
      const names = await fsp.readdir(this.full(p));
      return names.filter((n) => !n.includes('.tmp-')).sort();
    } catch (e) {
      notFound(e, p);
    }
  }

  async listPage(p: string, after: string | undefined, limit: number): Promise<ListPage> {
    const all = await this.list(p);
    const start = after === undefined ? 0 : upperBound(all, after);
    const names = all.slice(start, start + limit);
    return start + limit < all.length ? { names, next: names[names.length - 1] } : { names };
  }

  async scan(p: string, fn: (names: string[]) => boolean | Promise<boolean>): Promise<void> {
    let dir: fs.Dir;
    try {
      dir = await fsp.opendir(this.full(p), { bufferSize: SCAN_BATCH });
    } catch (e) {
      notFound(e, p);
    }
    let batch: string[] = [];
    // Leaving the loop early closes the directory.
    for await (const entry of dir) {
      if (!entry.name.includes('.tmp-')) batch.push(entry.name);
      if (batch.length < SCAN_BATCH) continue;
      if (!(await fn(batch))) return;
      batch = [];
    }
    if (batch.length) await fn(batch);
  }

  async move(src: string, dst: string): Promise<void> {
    const to = this.full(dst);
    await fsp.mkdir(path.dirname(to), { recursive: true });
    try {
      await fsp.rename(this.full(src), to);
    } catch (e) {
      notFound(e, src);
    }
  }

  async delete(p: string): Promise<void> {
    const file = this.full(p);
    try {
      await fsp.lstat(file);
    } catch (e) {
      notFound(e, p);
    }
    await fsp.rm(file, { recursive: true, force: true });
  }

  async walk(p: string, fn: (info: FileInfo) => Promise<void | 'skip'> | void | 'skip'): Promise<void> {
    const names = await this.list(p);
    for (const n of names) {
      const child = p === '/' ? `/${n}` : `${p}/${n}`;
      let info: FileInfo;
      try {
        info = await this.stat(child);
      } catch (e) {
        if (e instanceof PathNotFoundError) continue; // removed while we walked
        throw e;
      }
      const r = await fn(info);
      if (info.isDir && r !== 'skip') {
        try {
          await this.walk(child, fn);
        } catch (e) {
          if (!(e instanceof PathNotFoundError)) throw e;
        }
      }
    }
  }

  async redirectURL(): Promise<string | undefined> {
    return undefined;
  }

  async healthCheck(): Promise<void> {
    await fsp.access(this.root, this.readOnly ? fs.constants.R_OK : fs.constants.R_OK | fs.constants.W_OK);
  }

  async close(): Promise<void> {}
}

/** Index of the first element greater than key in a sorted array. */
function upperBound(sorted: string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Appends in batches. One writev is in flight while the next batch fills, so
 * receiving overlaps writing; and every SYNC_EVERY bytes a datasync starts in
 * the background, so the disk writes back while the upload still streams and
 * the fsync at commit has only the last stretch left to flush.
 */
class FilesystemWriter implements FileWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private closed = false;
  private writing: Promise<void> = Promise.resolve();
  private syncing: Promise<void> = Promise.resolve();
  private syncBusy = false;
  /** Bytes of the file handed to writev (the size at open plus what this writer flushed). */
  private flushedTo: number;
  private failed: unknown;

  constructor(
    private readonly fh: fsp.FileHandle,
    private readonly file: string,
    public size: number,
    /** A background sync failed after close(): the driver fails the file's next writer. */
    private readonly lostSync: (e: unknown) => void,
  ) {
    this.flushedTo = size;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.closed) throw new Error('writer is closed');
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.size += chunk.length;
    if (this.pendingBytes >= WRITE_BATCH) await this.flush();
  }

  private async flush(): Promise<void> {
    if (!this.pendingBytes) return;
    const bufs = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    await this.writing; // in order, one at a time; a failed write throws here
    // writev takes at most IOV_MAX buffers; many tiny chunks are joined first.
    const written = this.fh.writev(bufs.length > 256 ? [Buffer.concat(bufs)] : bufs).then(() => undefined);
    written.catch(() => undefined); // surfaces where it is awaited
    this.writing = written;
    // By offsets in the file, so uploads sent in many PATCHes (a writer each) sync as often.
    const crossed = Math.floor((this.flushedTo + bytes) / SYNC_EVERY) > Math.floor(this.flushedTo / SYNC_EVERY);
    this.flushedTo += bytes;
    if (crossed && !this.syncBusy) {
      this.syncBusy = true;
      this.syncing = written
        .then(() => flushToDisk(this.fh, this.file, 'datasync'))
        .catch((e) => {
          this.failed ??= e;
        })
        .finally(() => {
          this.syncBusy = false;
        });
    }
  }

  /** Wait for the write and the sync in flight; the first failure throws. */
  private async settle(): Promise<void> {
    await this.writing;
    await this.syncing;
    if (this.failed) throw this.failed;
  }

  /**
   * The bytes are written (a later writer reads and appends to them), not yet
   * durable: only commit() syncs. A datasync in flight finishes in the
   * background rather than hold up the PATCH that ends here; an upload cut
   * short by a power loss is re-hashed from what the disk kept, so a lost
   * tail shows as a short upload or a digest mismatch, never as a blob.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.flush();
      await this.writing;
    } finally {
      await this.writing.catch(() => undefined);
      const background = this.syncBusy;
      const closed = this.syncing.then(async () => {
        await this.fh.close();
        if (this.failed) throw this.failed;
      });
      if (background) closed.catch(this.lostSync);
      else await closed;
    }
  }

  async commit(): Promise<void> {
    await this.flush();
    await this.settle();
    await flushToDisk(this.fh, this.file, 'sync');
    await this.close();
  }

  async cancel(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    await this.close().catch(() => undefined);
    await fsp.rm(this.file, { force: true });
  }
}
