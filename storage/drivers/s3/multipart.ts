// Multipart uploads as the state of unfinished writes: all of it lives in the
// bucket (the upload's parts plus a tail object at the key), so any replica
// can continue a write that another began, and stat can size it.
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type GetObjectCommandOutput,
  type ListMultipartUploadsCommandOutput,
  type ListPartsCommandOutput,
} from '@aws-sdk/client-s3';
import { MAX_PART_SIZE, MAX_PARTS, META_OFFSET, META_UPLOAD, MIN_CHUNK_SIZE, MiB, S3Bucket, type S3DriverOptions } from './bucket';
import { isMissing } from './errors';
import { readAll } from './read';
import { PartBuffers, PARTS_IN_FLIGHT } from './writer';

export class S3Multipart extends S3Bucket {
  readonly chunkSize: number;
  readonly maxParts: number;
  readonly partBuffers: PartBuffers;
  protected readonly copyThreshold: number;
  private readonly copyChunkSize: number;
  private readonly copyConcurrency: number;

  constructor(opts: S3DriverOptions) {
    super(opts);
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
  }

  /** Server-side copy in ranged parts (CopyObject stops at 5 GiB); parts grow to stay within the part limit. */
  protected async multipartCopy(srcKey: string, dstKey: string, size: number): Promise<void> {
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

  protected async abortUploads(key: string, exact: boolean): Promise<number> {
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
  protected async openUpload(key: string, hint?: string) {
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
  protected tailSkip(key: string, meta: Record<string, string>, uploadId: string | undefined, partBytes: number, tailLength: number): number {
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
}
