// Upload sessions. Their state lives in the store (distribution's
// _uploads/<id>/{data,startedat}), so any replica can continue one. The running
// hash is a per-process accelerator: where it is missing (another replica, a
// restart) the data is re-hashed from the store when the upload completes.
import crypto from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { newHash, parseDigest, type Algorithm, type Digest } from './digest';
import { isNotFound, WriteLostError, type FileWriter, type StorageDriver } from './driver';
import { err } from './errors';
import { checkName } from './names';
import { paths } from './paths';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface UploadStatus {
  id: string;
  /** Bytes received so far. */
  size: number;
}

interface RunningHash {
  // sha256 only: a client naming sha512 at completion costs a re-hash.
  hash: crypto.Hash;
  offset: number;
}

export type Chunks = AsyncIterable<Buffer>;

/** What the content store does for uploads. */
export interface BlobSink {
  /**
   * Make a verified blob visible: `data` is the upload's data path (moved into
   * place or dropped) or a writer from `directWriter` (committed or cancelled).
   */
  commit(repo: string, d: Digest, size: number, data: string | FileWriter): Promise<void>;
  /** A writer at the blob's final place when that saves a copy (S3), else undefined. */
  directWriter(d: Digest): Promise<FileWriter | undefined>;
}

/** A direct write that a collector's sweep of the same blob aborted. */
export function removedWhileWritten(e: unknown): unknown {
  return isNotFound(e) ? err('BLOB_UPLOAD_INVALID', 'the blob was removed while it was written; upload it again') : e;
}

export class UploadManager {
  // A running SHA-256 state is a few hundred bytes of native memory, counted as 1 KiB.
  private readonly hashes = new LRUCache<string, RunningHash>({ maxSize: 4 << 20, sizeCalculation: () => 1024 });
  // Serialises requests on one upload within this process.
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Uploads with a request in flight (a gauge for metrics). */
  inProgress = 0;

  constructor(
    private readonly driver: StorageDriver,
    private readonly sink: BlobSink,
  ) {}

  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(fn);
    this.locks.set(id, run);
    this.inProgress++;
    try {
      return await run;
    } finally {
      this.inProgress--;
      if (this.locks.get(id) === run) this.locks.delete(id);
    }
  }

  async start(repo: string): Promise<UploadStatus> {
    checkName(repo);
    const id = crypto.randomUUID();
    try {
      await this.driver.putContent(paths.uploadStartedAt(repo, id), Buffer.from(new Date().toISOString()));
      const w = await this.driver.writer(paths.uploadData(repo, id), false);
      await w.close();
    } catch (e) {
      // Half a session would wait for the purge; no client knows its id.
      await this.removeSession(repo, id).catch(() => undefined);
      throw e;
    }
    this.hashes.set(id, { hash: newHash('sha256'), offset: 0 });
    return { id, size: 0 };
  }

  async status(repo: string, id: string): Promise<UploadStatus> {
    checkName(repo);
    // After a request in flight on this upload (e.g. a PATCH whose client hung
    // up), whose bytes may reach the store only as it ends (S3 parts).
    return this.locked(id, async () => ({ id, size: await this.size(repo, id) }));
  }

  private async size(repo: string, id: string): Promise<number> {
    return this.unknownIfMissing(id, async () => {
      await this.driver.stat(paths.uploadStartedAt(repo, id));
      return (await this.driver.stat(paths.uploadData(repo, id))).size;
    });
  }

  /**
   * The session's data opened for appending: its size is the bytes received
   * (one lookup of the upload's state where a stat and then an open would
   * each make one: S3 lists the multipart upload and its parts for both).
   */
  private async open(repo: string, id: string, start: number | undefined): Promise<FileWriter> {
    const w = await this.unknownIfMissing(id, async () => {
      await this.driver.stat(paths.uploadStartedAt(repo, id));
      return this.driver.writer(paths.uploadData(repo, id), true);
    });
    if (start !== undefined && start !== w.size) {
      await w.close();
      throw err('RANGE_INVALID', `chunk starts at ${start} but ${w.size} bytes were received`, { size: w.size });
    }
    return w;
  }

  private async unknownIfMissing<T>(id: string, fn: () => Promise<T>): Promise<T> {
    if (!UUID.test(id)) throw err('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { id });
    try {
      return await fn();
    } catch (e) {
      if (isNotFound(e)) throw err('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { id });
      throw e;
    }
  }

  /**
   * Append a chunk. `start`, when the client sent Content-Range, must equal
   * the bytes received so far (else RANGE_INVALID: out of order or repeated).
   */
  async append(repo: string, id: string, body: Chunks, start?: number, length?: number): Promise<UploadStatus> {
    checkName(repo);
    return this.lockedWrite(repo, id, async () => {
      const w = await this.open(repo, id, start);
      const size = w.size;
      const written = await this.write(w, id, body, false, length);
      return { id, size: size + written };
    });
  }

  /** Finish an upload with an optional last chunk; the blob becomes visible only when its digest checks. */
  async complete(repo: string, id: string, digest: string, body: Chunks | undefined, length?: number, start?: number): Promise<{ digest: string; size: number }> {
    checkName(repo);
    const d = parseDigest(digest);
    return this.lockedWrite(repo, id, async () => {
      const w = await this.open(repo, id, start);
      const size = w.size;
      // The whole blob in this request (a monolithic push): straight to its place.
      const direct = body && size === 0 && d.algorithm === 'sha256' ? await this.sink.directWriter(d) : undefined;
      if (direct) {
        await w.close();
        return this.completeDirect(repo, id, d, direct, body!, length);
      }
      const written = body ? await this.write(w, id, body, true, length) : (await w.commit(), 0);
      const total = size + written;
      const actual = await this.digestOf(repo, id, d.algorithm, total);
      if (actual !== d.value) {
        await this.cancelLocked(repo, id);
        throw err('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: d.value, actual });
      }
      // The store moves the data into place (or links the copy it already holds).
      await this.sink.commit(repo, d, total, paths.uploadData(repo, id));
      await this.removeSession(repo, id);
      return { digest: d.value, size: total };
    });
  }

  /** Like locked(), and if the disk may have lost bytes of the upload (a failed flush) it is dropped: the client starts over. */
  private lockedWrite<T>(repo: string, id: string, fn: () => Promise<T>): Promise<T> {
    return this.locked(id, async () => {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof WriteLostError) await this.cancelLocked(repo, id).catch(() => undefined);
        throw e;
      }
    });
  }

  private async completeDirect(repo: string, id: string, d: Digest, w: FileWriter, body: Chunks, length?: number): Promise<{ digest: string; size: number }> {
    this.hashes.delete(id);
    const hash = newHash('sha256');
    let n: number;
    try {
      n = await this.pump(body, w, hash, length);
    } catch (e) {
      // Nothing of a failed direct write is kept: the client starts the PUT over.
      await w.cancel().catch(() => undefined);
      throw removedWhileWritten(e);
    }
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== d.value) {
      await w.cancel();
      await this.cancelLocked(repo, id);
      throw err('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: d.value, actual });
    }
    await this.sink.commit(repo, d, n, w);
    await this.removeSession(repo, id);
    return { digest: d.value, size: n };
  }

  /** Copy the body into w, hashing it; enforce a declared length. Returns bytes written. */
  private async pump(body: Chunks, w: FileWriter, hash: crypto.Hash | undefined, length?: number): Promise<number> {
    let n = 0;
    for await (const chunk of body) {
      n += chunk.length;
      if (length !== undefined && n > length) throw err('SIZE_INVALID', 'body is longer than declared', { length });
      hash?.update(chunk);
      await w.write(chunk);
    }
    if (length !== undefined && n !== length) throw err('SIZE_INVALID', 'body is shorter than declared', { length, received: n });
    return n;
  }

  async cancel(repo: string, id: string): Promise<void> {
    checkName(repo);
    await this.locked(id, async () => {
      await this.size(repo, id);
      await this.cancelLocked(repo, id);
    });
  }

  private async cancelLocked(repo: string, id: string): Promise<void> {
    try {
      const w = await this.driver.writer(paths.uploadData(repo, id), true);
      await w.cancel();
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    await this.removeSession(repo, id);
  }

  private async removeSession(repo: string, id: string): Promise<void> {
    this.hashes.delete(id);
    try {
      await this.driver.delete(paths.uploadDir(repo, id));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  /** Stream chunks to the upload's data (w, opened for appending) while hashing; returns bytes written. */
  private async write(w: FileWriter, id: string, body: Chunks, commit: boolean, length?: number): Promise<number> {
    const offset = w.size;
    let h = this.hashes.get(id);
    if (h && h.offset !== offset) h = undefined;
    this.hashes.delete(id);
    let n: number;
    try {
      n = await this.pump(body, w, h?.hash, length);
    } catch (e) {
      // Keep what arrived so the client can resume from the reported offset.
      await w.close().catch(() => undefined);
      throw e;
    }
    if (commit) await w.commit();
    else await w.close();
    if (h) {
      h.offset = offset + n;
      this.hashes.set(id, h);
    }
    return n;
  }

  private async digestOf(repo: string, id: string, algorithm: Algorithm, size: number): Promise<string> {
    const h = this.hashes.get(id);
    if (h && h.offset === size && algorithm === 'sha256') return `sha256:${h.hash.copy().digest('hex')}`;
    const hash = newHash(algorithm);
    const r = await this.driver.reader(paths.uploadData(repo, id), 0);
    for await (const chunk of r) hash.update(chunk as Buffer);
    return `${algorithm}:${hash.digest('hex')}`;
  }
}
