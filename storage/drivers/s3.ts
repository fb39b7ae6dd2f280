// S3 storage driver (AWS S3 and S3-compatible stores: MinIO, Ceph RGW, Swift
// s3api, R2, ...), configured with distribution's `storage.s3` keys.
//
// Keys are `<rootdirectory>/<path>`; "directories" are key prefixes. All state
// of an unfinished write lives in the bucket so that any replica can continue
// it (see S3Writer).
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { PassThrough, pipeline, Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type GetObjectCommandOutput,
  type HeadObjectCommandOutput,
  type ListMultipartUploadsCommandOutput,
  type ListPartsCommandOutput,
  type ListObjectsV2CommandOutput,
  type ObjectCannedACL,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  InvalidOffsetError,
  PathNotFoundError,
  StorageUnavailableError,
  type FileInfo,
  type FileWriter,
  type ListPage,
  type StorageDriver,
} from '../driver';

const MiB = 1024 * 1024;
/** S3's smallest part (all parts but the last) and largest part. */
export const MIN_CHUNK_SIZE = 5 * MiB;
const MAX_PART_SIZE = 5 * 1024 * MiB;
const MAX_PARTS = 10000;
const LIST_MAX = 1000;
/** Part uploads one writer keeps in flight while it fills the next part (memory: this many parts plus one). */
const PARTS_IN_FLIGHT = 2;
/**
 * Reads of at least two of these are fetched as ranged GETs of this size, the
 * next one in flight while the current one streams: an S3 store serves one
 * stream at a fraction of what it serves two (Swift on loopback: ~240 MB/s
 * relayed with one, ~300 with two).
 */
const READ_PART = 8 * MiB;
/** What all reads of one driver may hold of parts fetched ahead (a part each, reserved when the read starts): a store busy with many reads gains little from more, and each costs memory. */
const READ_AHEAD_BUDGET = 2 * READ_PART;
/** What the part being streamed may hold before its GET is paused. */
const READ_HEAD_BUFFER = 1 * MiB;

/** distribution's `storage.s3` options (sizes in bytes, durations in ms). */
export interface S3DriverOptions {
  bucket: string;
  region: string;
  /** Endpoint of an S3-compatible store; a bare host gets http/https from `secure`. */
  regionendpoint?: string;
  forcepathstyle?: boolean;
  /** With secretkey: static credentials. Both unset: the AWS default chain (env, profile, IMDS, ...). */
  accesskey?: string;
  secretkey?: string;
  sessiontoken?: string;
  rootdirectory?: string;
  /** Use https for a regionendpoint without a scheme (default true). */
  secure?: boolean;
  /** Do not verify the TLS certificate of the endpoint. */
  skipverify?: boolean;
  /** Upload part size, at least 5 MiB (default 10 MiB). */
  chunksize?: number;
  /** Objects larger than this are moved with a multipart UploadPartCopy (default 32 MiB). */
  multipartcopythresholdsize?: number;
  multipartcopychunksize?: number;
  multipartcopymaxconcurrency?: number;
  encrypt?: boolean;
  keyid?: string;
  /** STANDARD (default), REDUCED_REDUNDANCY, ... or NONE to send no storage class. */
  storageclass?: string;
  objectacl?: string;
  /** Lifetime of presigned redirect URLs (default 20 min). */
  redirectexpiry?: number;
  /** Most parts one upload may use; part sizes grow to fit (default 10,000, S3's limit). */
  maxuploadparts?: number;
  /** TCP connect timeout per attempt (default 5 s). */
  connecttimeout?: number;
  /** A socket idle this long fails the attempt (default 30 s). */
  idletimeout?: number;
  /** One operation, all retries included, until the response starts (default 60 s). */
  operationtimeout?: number;
  /** Attempts per operation, retrying throttling, 5xx and network errors with backoff (default 5). */
  maxattempts?: number;
}

/** Metadata on the object that holds the not-yet-part-sized tail of an unfinished write. */
const META_OFFSET = 'berth-offset';
const META_UPLOAD = 'berth-upload';

export class S3Driver implements StorageDriver {
  readonly name = 's3';
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix of the root directory: "" or "some/root/". */
  readonly prefix: string;
  readonly chunkSize: number;
  readonly maxParts: number;
  readonly partBuffers: PartBuffers;
  private readonly copyThreshold: number;
  private readonly copyChunkSize: number;
  private readonly copyConcurrency: number;
  private readonly operationTimeout: number;
  private readonly redirectExpiry: number;
  private readAheadFree = READ_AHEAD_BUDGET;
  private readonly putParams: {
    StorageClass?: StorageClass;
    ServerSideEncryption?: ServerSideEncryption;
    SSEKMSKeyId?: string;
    ACL?: ObjectCannedACL;
    ContentType: string;
  };

  constructor(opts: S3DriverOptions) {
    if (!opts.bucket) throw new Error('storage.s3.bucket is required');
    if (!opts.region) throw new Error('storage.s3.region is required');
    this.bucket = opts.bucket;
    const root = (opts.rootdirectory ?? '').replace(/^\/+|\/+$/g, '');
    this.prefix = root ? root + '/' : '';
    this.chunkSize = opts.chunksize ?? 2 * MIN_CHUNK_SIZE;
    if (this.chunkSize < MIN_CHUNK_SIZE) throw new Error(`storage.s3.chunksize must be at least ${MIN_CHUNK_SIZE} bytes`);
    this.maxParts = opts.maxuploadparts ?? MAX_PARTS;
    // what one upload uses at once: a part filling, PARTS_IN_FLIGHT sending
    this.partBuffers = new PartBuffers((1 + PARTS_IN_FLIGHT) * this.chunkSize, MIN_CHUNK_SIZE);
    if (this.maxParts < 1 || this.maxParts > MAX_PARTS) throw new Error(`storage.s3.maxuploadparts must be 1..${MAX_PARTS}`);
    this.copyThreshold = opts.multipartcopythresholdsize ?? 32 * MiB;
    this.copyChunkSize = opts.multipartcopychunksize ?? 32 * MiB;
    if (this.copyChunkSize < MIN_CHUNK_SIZE) throw new Error(`storage.s3.multipartcopychunksize must be at least ${MIN_CHUNK_SIZE} bytes`);
    if (this.copyThreshold > MAX_PART_SIZE) throw new Error('storage.s3.multipartcopythresholdsize must be at most 5 GiB');
    this.copyConcurrency = Math.max(1, opts.multipartcopymaxconcurrency ?? 100);
    this.operationTimeout = opts.operationtimeout ?? 60_000;
    this.redirectExpiry = opts.redirectexpiry ?? 20 * 60_000;
    const storageClass = opts.storageclass ?? 'STANDARD';
    this.putParams = {
      ContentType: 'application/octet-stream',
      ...(storageClass !== 'NONE' && { StorageClass: storageClass as StorageClass }),
      ...(opts.encrypt && { ServerSideEncryption: (opts.keyid ? 'aws:kms' : 'AES256') as ServerSideEncryption }),
      ...(opts.encrypt && opts.keyid && { SSEKMSKeyId: opts.keyid }),
      ...(opts.objectacl && { ACL: opts.objectacl as ObjectCannedACL }),
    };

    let endpoint = opts.regionendpoint;
    if (endpoint && !/^https?:\/\//.test(endpoint)) endpoint = `${opts.secure === false ? 'http' : 'https'}://${endpoint}`;
    const agentOpts = { keepAlive: true, maxSockets: 64 };
    this.client = new S3Client({
      region: opts.region,
      endpoint,
      forcePathStyle: opts.forcepathstyle ?? false,
      credentials:
        opts.accesskey && opts.secretkey
          ? { accessKeyId: opts.accesskey, secretAccessKey: opts.secretkey, sessionToken: opts.sessiontoken }
          : undefined,
      maxAttempts: opts.maxattempts ?? 5,
      retryMode: 'standard',
      // Flexible (CRC) checksums are not implemented by every S3-compatible
      // store; send and check them only where the API requires one.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: opts.connecttimeout ?? 5000,
        socketTimeout: opts.idletimeout ?? 30_000,
        httpAgent: quietSockets(new http.Agent(agentOpts)),
        httpsAgent: quietSockets(new https.Agent({ ...agentOpts, rejectUnauthorized: !opts.skipverify })),
      },
    });
    // DeleteObjects requires an integrity header; many S3-compatible stores
    // (Swift s3api, older MinIO and Ceph) accept only Content-MD5 for it.
    // Over TLS, data uploads go unsigned (as the Java and Go SDKs do on
    // https): TLS already protects the bytes, and signing them is one more
    // SHA-256 pass over every byte pushed. Plain http keeps the signature.
    const unsignedData = new URL(endpoint ?? 'https://s3.amazonaws.com').protocol === 'https:';
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const req = args.request as { body?: unknown; headers?: Record<string, string> };
        if (context.commandName === 'DeleteObjectsCommand' && req.headers && (typeof req.body === 'string' || Buffer.isBuffer(req.body))) {
          req.headers['content-md5'] = createHash('md5').update(req.body).digest('base64');
        }
        if (unsignedData && req.headers && (context.commandName === 'UploadPartCommand' || context.commandName === 'PutObjectCommand')) {
          req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        }
        return next(args);
      },
      { step: 'build', name: 'berthIntegrityHeaders' },
    );
  }

  // ---- keys and calls ----

  key(path: string): string {
    const segments = path.split('/').slice(1);
    if (path !== '/' && (path[0] !== '/' || segments.some((s) => s === '' || s === '.' || s === '..'))) {
      throw new Error(`invalid storage path: ${JSON.stringify(path)}`);
    }
    return this.prefix + path.slice(1);
  }

  /** The key prefix of everything under a directory path. */
  private dirPrefix(path: string): string {
    return path === '/' ? this.prefix : this.key(path) + '/';
  }

  /**
   * Send one command with a deadline covering all its retries. The deadline
   * ends when the response starts, so a streamed body is bounded by the
   * socket idle timeout instead.
   */
  async send<T>(command: { input: object }, what: string): Promise<T> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.operationTimeout);
    try {
      return (await this.client.send(command as any, { abortSignal: ac.signal })) as T;
    } catch (err) {
      throw unavailable(err, ac.signal.aborted, what) ?? err;
    } finally {
      clearTimeout(timer);
    }
  }

  private async head(key: string) {
    try {
      return await this.send<HeadObjectCommandOutput>(
        new HeadObjectCommand({ Bucket: this.bucket, Key: key }),
        'HeadObject',
      );
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
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
      return (await this.get(path, offset, end)).body;
    }
    this.readAheadFree -= READ_PART;
    let first: { body: Readable; etag?: string };
    try {
      first = await this.get(path, offset, offset + READ_PART);
    } catch (err) {
      this.readAheadFree += READ_PART;
      throw err;
    }
    const out = Readable.from(this.readParts(path, first, offset + READ_PART, end), { objectMode: false });
    // 'close' comes however the read ends, even destroyed before its first read (when the parts never started).
    out.once('close', () => {
      first.body.destroy();
      this.readAheadFree += READ_PART;
    });
    return out;
  }

  /** GET [offset, end) of an object; end undefined = to its end. */
  private async get(path: string, offset: number, end?: number, ifMatch?: string): Promise<{ body: Readable; etag?: string }> {
    const key = this.key(path);
    const range = offset > 0 || end !== undefined ? `bytes=${offset}-${end !== undefined ? end - 1 : ''}` : undefined;
    let res;
    try {
      res = await this.send<GetObjectCommandOutput>(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range, IfMatch: ifMatch }),
        'GetObject',
      );
    } catch (err) {
      if (isMissing(err)) throw new PathNotFoundError(path);
      if (status(err) === 416) {
        // Reading at the very end (or an empty object) is an empty read, beyond it an error.
        const h = await this.head(key);
        if (!h) throw new PathNotFoundError(path);
        if (offset > (h.ContentLength ?? 0)) throw new InvalidOffsetError(path, offset);
        return { body: Readable.from([]) };
      }
      throw err;
    }
    const body = res.Body as Readable;
    if (res.Metadata?.[META_OFFSET] !== undefined) {
      body.destroy();
      // S3 cannot read the parts of an unfinished multipart upload.
      throw new Error(`${path} is being written; commit it before reading`);
    }
    return { body, etag: res.ETag };
  }

  /**
   * The parts of [from, end) after the first, in order, the next one in
   * flight while one streams. Later parts must match the first one's ETag, so
   * a read never mixes two versions of an object.
   */
  private async *readParts(path: string, first: { body: Readable; etag?: string }, from: number, end: number): AsyncGenerator<Buffer> {
    let pos = from;
    // The part behind the one streaming may fill up whole: the read's reserved part.
    const ahead = () => {
      if (pos >= end) return undefined;
      const to = Math.min(pos + READ_PART, end);
      const part = partRead(this.get(path, pos, to, first.etag).then((r) => r.body), READ_PART);
      pos = to;
      return part;
    };
    let current: Readable | undefined = partRead(Promise.resolve(first.body), READ_HEAD_BUFFER);
    let next = ahead();
    try {
      while (current) {
        yield* current;
        current = next;
        next = ahead();
      }
    } finally {
      current?.destroy();
      next?.destroy();
    }
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

  // ---- listing ----

  /** One page of direct children of a key prefix (delimiter listing). */
  private async listChildren(prefix: string, startAfter?: string, token?: string) {
    const res = await this.send<ListObjectsV2CommandOutput>(
      new ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix: prefix,
        Delimiter: '/',
        MaxKeys: LIST_MAX,
        StartAfter: token ? undefined : startAfter,
        ContinuationToken: token,
      }),
      'ListObjectsV2',
    );
    const names: string[] = [];
    let last = '';
    for (const o of res.Contents ?? []) {
      const name = o.Key!.slice(prefix.length);
      if (name) names.push(name);
      if (o.Key! > last) last = o.Key!;
    }
    for (const p of res.CommonPrefixes ?? []) {
      const name = p.Prefix!.slice(prefix.length, -1);
      if (name) names.push(name);
      if (p.Prefix! > last) last = p.Prefix!;
    }
    return { names, last, next: res.IsTruncated ? res.NextContinuationToken : undefined };
  }

  async list(path: string): Promise<string[]> {
    const prefix = this.dirPrefix(path);
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.listChildren(prefix, undefined, token);
      names.push(...page.names);
      token = page.next;
    } while (token);
    if (!names.length) throw new PathNotFoundError(path);
    return [...new Set(names)].sort();
  }

  /**
   * S3 lists in key order, where a directory "foo" sorts as "foo/", after
   * "foo-bar" and "foo.x"; names are paged in plain name order. A name can
   * only appear later in key order than a greater name if it is a directory
   * whose name is a prefix of that greater name followed by a character
   * below '/', so reading on up to that prefix + '/' settles the page.
   */
  async listPage(path: string, after: string | undefined, limit: number): Promise<ListPage> {
    const prefix = this.dirPrefix(path);
    const found = new Set<string>();
    let token: string | undefined;
    for (;;) {
      const page = await this.listChildren(prefix, after !== undefined ? prefix + after : undefined, token);
      for (const n of page.names) if (after === undefined || n > after) found.add(n);
      token = page.next;
      if (!token) break;
      if (found.size > limit) {
        const edge = [...found].sort()[limit];
        const bound = prefix + shortestLowerPrefix(edge);
        if (page.last >= bound) break;
      }
    }
    const sorted = [...found].sort();
    if (sorted.length > limit) return { names: sorted.slice(0, limit), next: sorted[limit - 1] };
    if (!sorted.length && after === undefined) throw new PathNotFoundError(path);
    return { names: sorted };
  }

  /**
   * One ListObjectsV2 with delimiter "/<childPrefix>" groups all keys of a
   * marked directory into one common prefix, so this costs one request per
   * 1,000 marked directories however many keys they hold.
   */
  async listMarkedDirs(path: string, childPrefix: string): Promise<string[]> {
    const prefix = this.dirPrefix(path);
    const delimiter = '/' + childPrefix;
    const out: string[] = [];
    let token: string | undefined;
    do {
      const res: ListObjectsV2CommandOutput = await this.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: delimiter, MaxKeys: LIST_MAX, ContinuationToken: token }),
        'ListObjectsV2',
      );
      for (const p of res.CommonPrefixes ?? []) {
        const rel = p.Prefix!.slice(prefix.length, -delimiter.length);
        if (rel) out.push(rel);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /** Every object under a key prefix, in key order (flat listing: one request per 1,000 keys). */
  private async *objects(prefix: string) {
    let token: string | undefined;
    do {
      const res: ListObjectsV2CommandOutput = await this.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: LIST_MAX, ContinuationToken: token }),
        'ListObjectsV2',
      );
      for (const o of res.Contents ?? []) yield { key: o.Key!, size: o.Size ?? 0, modTime: o.LastModified ?? new Date(0) };
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Walks a flat listing: keys under a common prefix are contiguous in key
   * order, so directories are reported when their first key shows up, before
   * their contents, and a skipped directory is a prefix to pass over.
   */
  async walk(path: string, fn: (info: FileInfo) => Promise<void | 'skip'> | void | 'skip'): Promise<void> {
    const prefix = this.dirPrefix(path);
    const base = path === '/' ? '' : path;
    const seenDirs = new Set<string>();
    let skipped: string | undefined;
    let any = false;
    for await (const o of this.objects(prefix)) {
      any = true;
      if (skipped && o.key.startsWith(skipped)) continue;
      skipped = undefined;
      const parts = o.key.slice(prefix.length).split('/');
      let rel = '';
      let skip = false;
      for (let i = 0; i < parts.length - 1 && !skip; i++) {
        rel += '/' + parts[i];
        if (seenDirs.has(rel)) continue;
        seenDirs.add(rel);
        if ((await fn({ path: base + rel, size: 0, modTime: o.modTime, isDir: true })) === 'skip') {
          skipped = prefix + rel.slice(1) + '/';
          skip = true;
        }
      }
      if (!skip && parts[parts.length - 1]) {
        await fn({ path: base + rel + '/' + parts[parts.length - 1], size: o.size, modTime: o.modTime, isDir: false });
      }
    }
    if (!any) throw new PathNotFoundError(path);
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

  private copySource(key: string): string {
    return `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  /** Server-side copy in ranged parts (CopyObject stops at 5 GiB); parts grow to stay within the part limit. */
  private async multipartCopy(srcKey: string, dstKey: string, size: number): Promise<void> {
    const partSize = Math.max(this.copyChunkSize, Math.ceil(size / this.maxParts));
    const created = await this.send<{ UploadId?: string }>(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: dstKey, ...this.putParams }),
      'CreateMultipartUpload',
    );
    const uploadId = created.UploadId!;
    const count = Math.ceil(size / partSize);
    const parts: CompletedPart[] = new Array(count);
    let nextPart = 0;
    const worker = async () => {
      while (nextPart < count) {
        const i = nextPart++;
        const start = i * partSize;
        const last = Math.min(size, start + partSize) - 1;
        const res = await this.send<{ CopyPartResult?: { ETag?: string } }>(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: dstKey,
            UploadId: uploadId,
            PartNumber: i + 1,
            CopySource: this.copySource(srcKey),
            CopySourceRange: `bytes=${start}-${last}`,
          }),
          'UploadPartCopy',
        );
        parts[i] = { PartNumber: i + 1, ETag: res.CopyPartResult?.ETag };
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.copyConcurrency, count) }, worker));
      await this.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: dstKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
        'CompleteMultipartUpload',
      );
    } catch (err) {
      await this.abort(dstKey, uploadId).catch(() => undefined);
      throw err;
    }
  }

  async delete(path: string): Promise<void> {
    const key = this.key(path);
    const keys: string[] = [];
    let deleted = 0;
    if (path !== '/' && (await this.head(key))) keys.push(key);
    for await (const o of this.objects(this.dirPrefix(path))) {
      keys.push(o.key);
      if (keys.length >= LIST_MAX) deleted += await this.deleteKeys(keys.splice(0));
    }
    deleted += await this.deleteKeys(keys);
    // Unfinished writes hold parts that would otherwise linger (and be billed).
    const aborted = await this.abortUploads(key, false);
    if (!deleted && !aborted) throw new PathNotFoundError(path);
  }

  /** DeleteObjects in batches of at most 1,000 keys; returns how many were asked for. */
  private async deleteKeys(keys: string[]): Promise<number> {
    for (let i = 0; i < keys.length; i += LIST_MAX) {
      const batch = keys.slice(i, i + LIST_MAX);
      const res = await this.send<{ Errors?: { Key?: string; Code?: string; Message?: string }[] }>(
        new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        'DeleteObjects',
      );
      const errors = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (errors.length) throw new Error(`S3 DeleteObjects: ${errors[0].Key}: ${errors[0].Code} ${errors[0].Message ?? ''}`);
    }
    return keys.length;
  }

  /** Multipart uploads of `key` (exact) or of `key` and the keys under `key/` (tree). */
  async uploadsOf(key: string, exact: boolean): Promise<{ key: string; uploadId: string; initiated: Date }[]> {
    const out: { key: string; uploadId: string; initiated: Date }[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const res = await this.send<ListMultipartUploadsCommandOutput>(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: key,
          KeyMarker: keyMarker,
          UploadIdMarker: idMarker,
        }),
        'ListMultipartUploads',
      );
      for (const u of res.Uploads ?? []) {
        if (u.Key !== key && (exact || !u.Key!.startsWith(key === this.prefix ? key : key + '/'))) continue;
        out.push({ key: u.Key!, uploadId: u.UploadId!, initiated: u.Initiated ?? new Date(0) });
      }
      if (!res.IsTruncated) return out;
      keyMarker = res.NextKeyMarker;
      idMarker = res.NextUploadIdMarker;
    }
  }

  private async abortUploads(key: string, exact: boolean): Promise<number> {
    const uploads = await this.uploadsOf(key, exact);
    for (const u of uploads) await this.abort(u.key, u.uploadId);
    return uploads.length;
  }

  async abort(key: string, uploadId: string): Promise<void> {
    try {
      await this.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), 'AbortMultipartUpload');
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
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

  /**
   * Rebuild a writer's state from the bucket: the newest multipart upload of
   * the key with its parts, and the tail object at the key itself. The tail
   * records the byte offset it starts at; when a part was uploaded but the
   * tail not yet rewritten (a crash in between), the part begins with the
   * tail's bytes and those are dropped from it.
   */
  async openWrite(key: string) {
    let res;
    try {
      res = await this.send<GetObjectCommandOutput>(
        new GetObjectCommand({ Bucket: this.bucket, Key: key }),
        'GetObject',
      );
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    const body = res?.Body as Readable | undefined;
    const meta = res?.Metadata ?? {};
    const { uploadId, parts, partBytes } = await this.openUpload(key, meta[META_UPLOAD]).catch((err) => {
      body?.destroy();
      throw err;
    });
    const state = (tail: Buffer[]) => ({ uploadId, parts, partBytes, tail, size: partBytes + (tail[0]?.length ?? 0) });
    if (!res || !body) return state([]);
    if (meta[META_OFFSET] === undefined) {
      // A finished object. With an open upload it is the old content that a
      // truncating writer began to replace (and crashed before its first close).
      if (uploadId) return body.destroy(), state([]);
      if ((res.ContentLength ?? 0) < MIN_CHUNK_SIZE) return state([await readAll(body)]);
      // Appending to a large finished object: it becomes part 1, copied server-side.
      body.destroy();
      return { ...(await this.adoptFinished(key, res.ContentLength!)), tail: [] as Buffer[] };
    }
    const data = await readAll(body);
    return state([data.subarray(this.tailSkip(key, meta, uploadId, partBytes, data.length))]);
  }

  /**
   * The newest multipart upload of a key, with its parts in order. `hint` is
   * the upload a tail object names: when it is still open it is the newest
   * (a truncating writer aborts the key's uploads before starting its own), so
   * its parts are listed without listing the uploads first.
   */
  private async openUpload(key: string, hint?: string) {
    if (hint) {
      try {
        return { uploadId: hint, ...(await this.listParts(key, hint)) };
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
    const uploads = (await this.uploadsOf(key, true)).sort((a, b) => +b.initiated - +a.initiated);
    const uploadId = uploads[0]?.uploadId;
    return { uploadId, ...(uploadId ? await this.listParts(key, uploadId) : { parts: [] as CompletedPart[], partBytes: 0 }) };
  }

  private async listParts(key: string, uploadId: string) {
    const parts: CompletedPart[] = [];
    let partBytes = 0;
    let marker: string | undefined;
    for (;;) {
      const res = await this.send<ListPartsCommandOutput>(
        new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }),
        'ListParts',
      );
      for (const p of res.Parts ?? []) {
        if (p.PartNumber !== parts.length + 1) throw new Error(`S3 upload of ${key} has a gap before part ${p.PartNumber}`);
        parts.push({ PartNumber: p.PartNumber, ETag: p.ETag });
        partBytes += p.Size ?? 0;
      }
      if (!res.IsTruncated) return { parts, partBytes };
      marker = res.NextPartNumberMarker;
    }
  }

  /**
   * How many leading bytes of an unfinished write's tail object the parts
   * already hold: those of a part uploaded after the tail was written (the
   * writer died before rewriting it), or all of them when the tail belongs to
   * an upload that was aborted since (a truncating writer started over).
   */
  private tailSkip(key: string, meta: Record<string, string>, uploadId: string | undefined, partBytes: number, tailLength: number): number {
    if (meta[META_UPLOAD] && meta[META_UPLOAD] !== uploadId) return tailLength;
    const offset = Number(meta[META_OFFSET]);
    if (offset > partBytes) throw new Error(`S3 upload of ${key} is missing parts (tail at ${offset}, parts end at ${partBytes})`);
    return Math.min(tailLength, partBytes - offset);
  }

  /** Turn a finished object into part 1 of a new upload. */
  private async adoptFinished(key: string, size: number) {
    const created = await this.send<{ UploadId?: string }>(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ...this.putParams }),
      'CreateMultipartUpload',
    );
    const res = await this.send<{ CopyPartResult?: { ETag?: string } }>(
      new UploadPartCopyCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: created.UploadId!,
        PartNumber: 1,
        CopySource: this.copySource(key),
      }),
      'UploadPartCopy',
    );
    return {
      uploadId: created.UploadId,
      parts: [{ PartNumber: 1, ETag: res.CopyPartResult?.ETag }] as CompletedPart[],
      partBytes: size,
      size,
    };
  }

  /** Size of part n (1-based): doubles every tenth of the part limit, so 10 doublings cover > 5 TiB at 5 MiB chunks. */
  partSize(n: number): number {
    const step = Math.ceil(this.maxParts / 10);
    return Math.min(MAX_PART_SIZE, this.chunkSize * 2 ** Math.floor((n - 1) / step));
  }

  async putTail(key: string, data: Buffer, offset: number, uploadId: string | undefined): Promise<void> {
    await this.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: data,
        ...this.putParams,
        Metadata: { [META_OFFSET]: String(offset), [META_UPLOAD]: uploadId ?? '' },
      }),
      'PutObject',
    );
  }

  async putFinal(key: string, data: Buffer): Promise<void> {
    await this.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: data, ...this.putParams }), 'PutObject');
  }

  async createUpload(key: string): Promise<string> {
    const res = await this.send<{ UploadId?: string }>(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ...this.putParams }),
      'CreateMultipartUpload',
    );
    return res.UploadId!;
  }

  async uploadPart(key: string, uploadId: string, n: number, body: Buffer): Promise<CompletedPart> {
    const res = await this.send<{ ETag?: string }>(
      new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: body }),
      'UploadPart',
    );
    return { PartNumber: n, ETag: res.ETag };
  }

  async completeUpload(key: string, uploadId: string, parts: CompletedPart[]): Promise<void> {
    await this.send(
      new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
      'CompleteMultipartUpload',
    );
  }

  async cancelWrite(key: string): Promise<void> {
    await this.abortUploads(key, true);
    await this.deleteKeys([key]);
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
class S3Writer implements FileWriter {
  private buf: Buffer = Buffer.alloc(0);
  private used = 0;
  private done = false;
  private inflight: Promise<void>[] = [];

  constructor(
    private readonly d: S3Driver,
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
 * The agent's sockets get an 'error' listener of their own. A store that
 * answers early and closes while a part is still being sent (a 404 for an
 * aborted multipart upload) makes the pending write fail with EPIPE after the
 * request has let go of its socket; with no listener that 'error' event would
 * end the process. The request itself has already failed or been answered.
 */
function quietSockets<A extends http.Agent>(agent: A): A {
  // http and https agents return the socket they create (no callback path)
  const create = agent.createConnection.bind(agent);
  agent.createConnection = (options, callback) => create(options, callback)?.on('error', () => undefined);
  return agent;
}

/**
 * One ranged GET of a part read, as a stream that holds up to `limit` bytes of
 * what arrives (its high-water mark) before the GET is paused. Destroying it
 * ends the GET, even one not answered yet.
 */
function partRead(body: Promise<Readable>, limit: number): Readable {
  // The writable side takes a socket read or so at a time; the readable side holds the part.
  const part = new PassThrough({ readableHighWaterMark: limit, writableHighWaterMark: 64 * 1024 });
  // A part fails its reader when read; one fetched ahead and never read fails no one.
  part.on('error', () => undefined);
  body.then(
    // Dropped before its GET answered: end the GET. (Node 24 and later throw, where 20 and
    // 22 called back, when asked to pipe into a destroyed stream: an unhandled rejection.)
    (b) => (part.destroyed ? b.destroy() : pipeline(b, part, () => undefined)),
    (e) => part.destroy(e),
  );
  return part;
}

/**
 * Part buffers kept for the next writer: every upload fills buffers of the
 * part size, and dropping them after each blob leaves tens of MiB of garbage
 * per push that the process holds until a collection runs. Keeps at most
 * `limit` bytes; smaller buffers (the first part growing) are not kept.
 */
class PartBuffers {
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

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The shortest proper prefix p of name with name[p.length] < '/', plus '/'; name itself if none. */
function shortestLowerPrefix(name: string): string {
  for (let i = 1; i < name.length; i++) if (name[i] < '/') return name.slice(0, i) + '/';
  return name;
}

function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isMissing(err: unknown): boolean {
  const name = (err as Error)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchUpload' || status(err) === 404;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

/** A StorageUnavailableError when the store could not be reached, timed out or is failing (5xx, throttling). */
function unavailable(err: unknown, timedOut: boolean, what: string): StorageUnavailableError | undefined {
  const e = err as Error & { code?: string; $metadata?: { httpStatusCode?: number } };
  const code = status(err);
  if (timedOut || e?.name === 'AbortError') return new StorageUnavailableError(`S3 ${what} timed out`, err);
  if (
    (code !== undefined && code >= 500) ||
    (e?.code && NETWORK_CODES.has(e.code)) ||
    ['TimeoutError', 'SlowDown', 'ServiceUnavailable', 'RequestTimeout', 'Throttling', 'ThrottlingException'].includes(e?.name)
  ) {
    return new StorageUnavailableError(`S3 ${what} failed: ${e.name}${e.message ? ': ' + e.message : ''}`, err);
  }
  return undefined;
}
