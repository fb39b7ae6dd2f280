// S3 storage driver (AWS S3 and S3-compatible stores: MinIO, Ceph RGW, Swift
// s3api, R2, ...), configured with distribution's `storage.s3` keys.
//
// Keys are `<rootdirectory>/<path>`; "directories" are key prefixes. All state
// of an unfinished write lives in the bucket so that any replica can continue
// it (see S3Writer). Its parts are in s3/: the bucket and its client
// (bucket.ts), unfinished writes (multipart.ts, writer.ts), reads (read.ts),
// listings (listing.ts) and the mapping of S3 errors (errors.ts).
import { Readable } from 'node:stream';
import { CopyObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { InvalidOffsetError, PathNotFoundError, type FileInfo, type FileWriter, type ListPage, type StorageDriver } from '../driver';
import { LIST_MAX, META_OFFSET, META_UPLOAD, type S3DriverOptions } from './s3/bucket';
import * as listing from './s3/listing';
import { S3Multipart } from './s3/multipart';
import { getRange, READ_AHEAD_BUDGET, READ_PART, readAll, readParts } from './s3/read';
import { S3Writer } from './s3/writer';

export type { S3DriverOptions } from './s3/bucket';

export class S3Driver extends S3Multipart implements StorageDriver {
  readonly name = 's3';
  private readonly redirectExpiry: number;
  private readAheadFree = READ_AHEAD_BUDGET;

  constructor(opts: S3DriverOptions) {
    super(opts);
    this.redirectExpiry = opts.redirectexpiry ?? 20 * 60_000;
  }

  // ---- whole-object operations ----

  async getContent(path: string): Promise<Buffer> {
    return readAll(await this.reader(path));
  }

  async putContent(path: string, content: Buffer): Promise<void> {
    await this.putFinal(this.key(path), content);
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    if (offset < 0 || !Number.isInteger(offset)) throw new InvalidOffsetError(path, offset);
    if (end !== undefined && end <= offset) {
      const info = await this.stat(path);
      if (offset > info.size) throw new InvalidOffsetError(path, offset);
      return Readable.from([]);
    }
    // A long read reserves one part of read-ahead for its whole life; without
    // one, parts would only add requests and a stall at each part's end.
    if (end === undefined || end - offset < 2 * READ_PART || this.readAheadFree < READ_PART) {
      return (await getRange(this, path, offset, end)).body;
    }
    this.readAheadFree -= READ_PART;
    let first: { body: Readable; etag?: string };
    try {
      first = await getRange(this, path, offset, offset + READ_PART);
    } catch (err) {
      this.readAheadFree += READ_PART;
      throw err;
    }
    const out = Readable.from(readParts(this, path, first, offset + READ_PART, end), { objectMode: false });
    // 'close' comes however the read ends, even destroyed before its first read (when the parts never started).
    out.once('close', () => {
      first.body.destroy();
      this.readAheadFree += READ_PART;
    });
    return out;
  }

  async stat(path: string): Promise<FileInfo> {
    const key = this.key(path);
    if (path !== '/') {
      const h = await this.head(key);
      if (h) {
        let size = h.ContentLength ?? 0;
        if (h.Metadata?.[META_OFFSET] !== undefined) {
          // An unfinished write: its parts plus what of the tail they do not hold.
          const u = await this.openUpload(key, h.Metadata[META_UPLOAD]);
          size = u.partBytes + size - this.tailSkip(key, h.Metadata, u.uploadId, u.partBytes, size);
        }
        return { path, size, modTime: h.LastModified ?? new Date(0), isDir: false };
      }
    }
    const res = await this.send<ListObjectsV2CommandOutput>(
      new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.dirPrefix(path), MaxKeys: 1 }),
      'ListObjectsV2',
    );
    const first = res.Contents?.[0];
    if (!first) throw new PathNotFoundError(path);
    return { path, size: 0, modTime: first.LastModified ?? new Date(0), isDir: true };
  }

  // ---- listing (s3/listing.ts) ----

  list(path: string): Promise<string[]> {
    return listing.list(this, path);
  }

  listPage(path: string, after: string | undefined, limit: number): Promise<ListPage> {
    return listing.listPage(this, path, after, limit);
  }

  listMarkedDirs(path: string, childPrefix: string): Promise<string[]> {
    return listing.listMarkedDirs(this, path, childPrefix);
  }

  walk(path: string, fn: (info: FileInfo) => Promise<void | 'skip'> | void | 'skip'): Promise<void> {
    return listing.walk(this, path, fn);
  }

  // ---- move and delete ----

  async move(src: string, dst: string): Promise<void> {
    const srcKey = this.key(src);
    const dstKey = this.key(dst);
    const h = await this.head(srcKey);
    if (!h) throw new PathNotFoundError(src);
    const size = h.ContentLength ?? 0;
    if (size <= this.copyThreshold) {
      await this.send(
        new CopyObjectCommand({ Bucket: this.bucket, Key: dstKey, CopySource: this.copySource(srcKey), ...this.putParams }),
        'CopyObject',
      );
    } else {
      await this.multipartCopy(srcKey, dstKey, size);
    }
    await this.deleteKeys([srcKey]);
  }

  async delete(path: string): Promise<void> {
    const key = this.key(path);
    const keys: string[] = [];
    let deleted = 0;
    if (path !== '/' && (await this.head(key))) keys.push(key);
    for await (const o of listing.objects(this, this.dirPrefix(path))) {
      keys.push(o.key);
      if (keys.length >= LIST_MAX) deleted += await this.deleteKeys(keys.splice(0));
    }
    deleted += await this.deleteKeys(keys);
    // Unfinished writes hold parts that would otherwise linger (and be billed).
    const aborted = await this.abortUploads(key, false);
    if (!deleted && !aborted) throw new PathNotFoundError(path);
  }

  // ---- writers ----

  /**
   * Writes straight to the final key as a multipart upload of its own, which
   * S3 makes visible only when it completes: the content-addressed blob needs
   * no server-side copy from an upload area, and writers of one blob racing
   * each other leave either's identical bytes.
   */
  async atomicWriter(path: string): Promise<FileWriter> {
    return new S3Writer(this, this.key(path), undefined, [], 0, [], true, true);
  }

  /** Abort multipart uploads under path started before the cutoff (writers that died mid-way). */
  async abortStaleWrites(path: string, before: Date): Promise<number> {
    const stale = (await this.uploadsOf(this.key(path), false)).filter((u) => u.initiated < before);
    for (const u of stale) await this.abort(u.key, u.uploadId);
    return stale.length;
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    const key = this.key(path);
    if (!append) {
      await this.abortUploads(key, true);
      return new S3Writer(this, key, undefined, [], 0, [], true);
    }
    const s = await this.openWrite(key);
    return new S3Writer(this, key, s.uploadId, s.parts, s.partBytes, s.tail);
  }

  // ---- misc ----

  async redirectURL(path: string, method: 'GET' | 'HEAD'): Promise<string | undefined> {
    const input = { Bucket: this.bucket, Key: this.key(path) };
    const cmd = method === 'HEAD' ? new HeadObjectCommand(input) : new GetObjectCommand(input);
    return getSignedUrl(this.client, cmd as any, { expiresIn: Math.floor(this.redirectExpiry / 1000) });
  }

  async healthCheck(): Promise<void> {
    await this.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 }), 'ListObjectsV2');
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
