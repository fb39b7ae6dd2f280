// The driver's FileWriter, and the part buffers its writers pass on to each other.
import type { CompletedPart } from '@aws-sdk/client-s3';
import { PathNotFoundError, type FileWriter } from '../../driver';
import { MIN_CHUNK_SIZE } from './bucket';
import { isMissing } from './errors';
import type { S3Multipart } from './multipart';

/** Part uploads one writer keeps in flight while it fills the next part (memory: this many parts plus one). */
export const PARTS_IN_FLIGHT = 2;

/**
 * Writes a file as an S3 multipart upload. Bytes are copied into a part
 * buffer until a part is full (parts are at least chunksize; S3 wants all but
 * the last to be >= 5 MiB) and uploaded while the next fills. close() stores
 * the not-yet-full remainder as the object at the key itself, tagged with the
 * offset it starts at, so a writer in another process can pick up from the
 * parts (ListParts) plus that tail. commit() uploads the remainder as the last
 * part and completes the upload, which atomically replaces the tail object; a
 * file that never filled a part is a single PutObject.
 */
export class S3Writer implements FileWriter {
  private buf: Buffer = Buffer.alloc(0);
  private used = 0;
  private done = false;
  private inflight: Promise<void>[] = [];

  constructor(
    private readonly d: S3Multipart,
    private readonly key: string,
    private uploadId: string | undefined,
    private readonly parts: CompletedPart[],
    private partBytes: number,
    tail: Buffer[],
    /** A new (truncating) writer must replace whatever is at the key on close(). */
    private dirty = false,
    /** From atomicWriter: never stores a tail, cancel() aborts only its own upload. */
    private readonly atomic = false,
  ) {
    for (const b of tail) this.append(b, 0, b.length);
  }

  get size(): number {
    return this.partBytes + this.used;
  }

  /** Copy into the part buffer, growing it geometrically up to the part size. */
  private append(src: Buffer, start: number, end: number): void {
    const need = this.used + end - start;
    if (need > this.buf.length) {
      const cap = Math.max(need, Math.min(this.d.partSize(this.parts.length + 1), Math.max(64 * 1024, this.buf.length * 2)));
      const grown = this.d.partBuffers.take(need) ?? Buffer.allocUnsafe(cap);
      this.buf.copy(grown, 0, 0, this.used);
      this.d.partBuffers.give(this.buf);
      this.buf = grown;
    }
    src.copy(this.buf, this.used, start, end);
    this.used = need;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.done) throw new Error('writer already closed, committed or cancelled');
    let off = 0;
    while (off < chunk.length) {
      const room = this.d.partSize(this.parts.length + 1) - this.used;
      const take = Math.min(room, chunk.length - off);
      this.append(chunk, off, off + take);
      off += take;
      this.dirty = true;
      if (this.used === this.d.partSize(this.parts.length + 1)) await this.flushPart();
    }
  }

  /**
   * Start uploading the full part buffer and carry on filling a new one, so
   * receiving overlaps sending; at most PARTS_IN_FLIGHT parts are in flight.
   */
  private async flushPart(refill = true): Promise<void> {
    const n = this.parts.length + 1;
    if (n > this.d.maxParts) throw new Error(`S3 upload of ${this.key} exceeds ${this.d.maxParts} parts`);
    this.uploadId ??= await this.d.createUpload(this.key);
    const full = this.buf;
    const body = full.subarray(0, this.used);
    const slot = this.parts.length;
    this.parts.push({ PartNumber: n });
    this.partBytes += this.used;
    const next = refill ? this.d.partSize(n + 1) : 0;
    this.buf = (next && this.d.partBuffers.take(next)) || Buffer.allocUnsafe(next);
    this.used = 0;
    const upload = this.d.uploadPart(this.key, this.uploadId, n, body).then(
      (part) => {
        this.parts[slot] = part;
        this.d.partBuffers.give(full); // sent: reuse it rather than allocate a part per part
      },
      (err) => {
        throw this.gone(err);
      },
    );
    upload.catch(() => undefined); // the error surfaces where it is awaited
    this.inflight.push(upload);
    if (this.inflight.length >= PARTS_IN_FLIGHT) await this.inflight.shift();
  }

  /** The multipart upload was aborted under the writer (a delete of its tree): PathNotFoundError. */
  private gone(err: unknown): unknown {
    return isMissing(err) ? new PathNotFoundError(this.key) : err;
  }

  private release(): void {
    this.d.partBuffers.give(this.buf);
    this.used = 0;
    this.buf = Buffer.alloc(0);
  }

  /** Wait for every part upload in flight (the first failure throws). */
  private async settle(): Promise<void> {
    const all = this.inflight;
    this.inflight = [];
    await Promise.all(all);
  }

  /**
   * Store what is not yet a part for a later writer. A remainder of at least
   * half a part (and S3's minimum) goes up as a short part instead: clients
   * sending chunks of about a part (8 MiB PATCHes, 10 MiB parts) then cost no
   * tail object to write now and read back on the next append. Short parts
   * at most halve the bytes the part limit allows.
   */
  async close(): Promise<void> {
    if (this.atomic) throw new Error('an atomic writer ends with commit() or cancel()');
    if (this.done) return;
    this.done = true;
    if (!this.dirty) return;
    if (this.used >= Math.max(MIN_CHUNK_SIZE, this.d.partSize(this.parts.length + 1) / 2) && this.parts.length + 1 < this.d.maxParts) {
      await this.flushPart(false);
    }
    await this.settle();
    await this.d.putTail(this.key, this.buf.subarray(0, this.used), this.partBytes, this.uploadId);
    this.dirty = false;
    this.release();
  }

  async commit(): Promise<void> {
    if (this.done) throw new Error('writer already closed, committed or cancelled');
    await this.settle();
    const rest = this.buf.subarray(0, this.used);
    if (!this.uploadId) {
      await this.d.putFinal(this.key, rest);
    } else {
      try {
        if (rest.length || !this.parts.length) {
          if (this.parts.length >= this.d.maxParts) throw new Error(`S3 upload of ${this.key} exceeds ${this.d.maxParts} parts`);
          this.parts.push(await this.d.uploadPart(this.key, this.uploadId, this.parts.length + 1, rest));
        }
        await this.d.completeUpload(this.key, this.uploadId, this.parts);
      } catch (err) {
        throw this.gone(err);
      }
    }
    this.partBytes += this.used;
    this.release();
    this.done = true;
  }

  async cancel(): Promise<void> {
    this.done = true;
    await this.settle().catch(() => undefined);
    this.release();
    if (!this.atomic) await this.d.cancelWrite(this.key);
    else if (this.uploadId) await this.d.abort(this.key, this.uploadId);
  }
}

/**
 * Part buffers kept for the next writer: every upload fills buffers of the
 * part size, and dropping them after each blob leaves tens of MiB of garbage
 * per push that the process holds until a collection runs. Keeps at most
 * `limit` bytes; smaller buffers (the first part growing) are not kept.
 */
export class PartBuffers {
  private free: Buffer[] = [];
  private bytes = 0;

  constructor(
    private readonly limit: number,
    private readonly minimum: number,
  ) {}

  take(size: number): Buffer | undefined {
    const i = this.free.findIndex((b) => b.length >= size);
    if (i < 0) return undefined;
    const [b] = this.free.splice(i, 1);
    this.bytes -= b.length;
    return b;
  }

  give(b: Buffer): void {
    if (b.length < this.minimum || this.bytes + b.length > this.limit) return;
    this.free.push(b);
    this.bytes += b.length;
  }
}
