// The bucket under the root directory: the S3 client and its connections,
// keys from storage paths, and the commands the other parts share.
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import {
  DeleteObjectsCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type HeadObjectCommandOutput,
  type ObjectCannedACL,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { isMissing, unavailable } from './errors';

export const MiB = 1024 * 1024;
/** S3's smallest part (all parts but the last) and largest part. */
export const MIN_CHUNK_SIZE = 5 * MiB;
export const MAX_PART_SIZE = 5 * 1024 * MiB;
export const MAX_PARTS = 10000;
export const LIST_MAX = 1000;
/** Metadata on the object that holds the not-yet-part-sized tail of an unfinished write (multipart.ts). */
export const META_OFFSET = 'berth-offset';
export const META_UPLOAD = 'berth-upload';

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

export class S3Bucket {
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix of the root directory: "" or "some/root/". */
  readonly prefix: string;
  private readonly operationTimeout: number;
  protected readonly putParams: {
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
    this.operationTimeout = opts.operationtimeout ?? 60_000;
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

  key(path: string): string {
    const segments = path.split('/').slice(1);
    if (path !== '/' && (path[0] !== '/' || segments.some((s) => s === '' || s === '.' || s === '..'))) {
      throw new Error(`invalid storage path: ${JSON.stringify(path)}`);
    }
    return this.prefix + path.slice(1);
  }

  /** The key prefix of everything under a directory path. */
  dirPrefix(path: string): string {
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

  async head(key: string) {
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

  copySource(key: string): string {
    return `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  /** DeleteObjects in batches of at most 1,000 keys; returns how many were asked for. */
  async deleteKeys(keys: string[]): Promise<number> {
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

  async putFinal(key: string, data: Buffer): Promise<void> {
    await this.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: data, ...this.putParams }), 'PutObject');
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

