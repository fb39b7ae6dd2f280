// A small streaming OCI distribution client over plain HTTP, shared by the
// benchmark and the process-level tests. Blob bodies always stream (from a
// generator or any replayable stream) and are hashed on the way through, so
// multi-GiB blobs never sit in memory.
import crypto from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const MANIFEST_ACCEPT = [
  OCI_MANIFEST,
  OCI_INDEX,
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** Blob content that can be streamed any number of times. */
export interface BlobSource {
  size: number;
  /** "sha256:<hex>" when known; filled in by sourceDigest() otherwise. */
  digest?: string;
  stream(): Readable;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export function sha256(data: Buffer | string): string {
  return 'sha256:' + crypto.createHash('sha256').update(data).digest('hex');
}

export function bufferSource(buf: Buffer | string): BlobSource & { digest: string } {
  const b = Buffer.from(buf);
  return { size: b.length, digest: sha256(b), stream: () => Readable.from([b]) };
}

const BLOCK = 1 << 20;

/**
 * Deterministic pseudo-random content: one AES-CTR block of 1 MiB derived from
 * the seed, stamped with the block number so no two MiB repeat. Generating is
 * a memcpy per MiB, cheap enough not to weigh on a benchmark.
 */
export class GeneratedBlob implements BlobSource {
  digest?: string;
  private base: Buffer;

  constructor(
    readonly seed: string,
    readonly size: number,
  ) {
    const key = crypto.createHash('sha256').update(seed).digest();
    const cipher = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    this.base = cipher.update(Buffer.alloc(Math.min(BLOCK, Math.max(size, 16))));
  }

  stream(): Readable {
    const { base, size } = this;
    return Readable.from(
      (function* () {
        for (let off = 0, k = 0; off < size; off += BLOCK, k++) {
          const n = Math.min(BLOCK, size - off);
          const b = Buffer.allocUnsafe(n);
          base.copy(b, 0, 0, n);
          // Stamp the block number (up to the block's own length) so blocks differ.
          const stamp = Buffer.alloc(8);
          stamp.writeBigUInt64BE(BigInt(k));
          stamp.copy(b, 0, 0, Math.min(8, n));
          yield b;
        }
      })(),
      { objectMode: false },
    );
  }
}

/** The source's digest, computed by streaming it once when not known yet. */
export async function sourceDigest(src: BlobSource): Promise<string> {
  if (!src.digest) src.digest = (await hashStream(src.stream())).digest;
  return src.digest;
}

/** Everything a stream yields, as one buffer. */
export async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function hashStream(s: Readable): Promise<{ digest: string; size: number }> {
  const h = crypto.createHash('sha256');
  let size = 0;
  for await (const b of s) {
    h.update(b as Buffer);
    size += (b as Buffer).length;
  }
  return { digest: 'sha256:' + h.digest('hex'), size };
}

export class HttpError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${method} ${url} -> ${status} ${body.slice(0, 500)}`);
    this.name = 'HttpError';
  }
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface PushResult {
  status: number;
  digest: string;
  size: number;
  location: string;
}

type Body = Buffer | string | Readable | undefined;

export class OciClient {
  readonly agent: http.Agent;

  private readonly headers: http.OutgoingHttpHeaders;

  /** `headers` go with every request (e.g. an Authorization header). */
  constructor(
    readonly baseUrl: string,
    opts: { maxSockets?: number; headers?: http.OutgoingHttpHeaders } = {},
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 16 });
    this.headers = opts.headers ?? {};
  }

  close(): void {
    this.agent.destroy();
  }

  /** Sends one request and resolves with the response head; the caller consumes the body. */
  send(method: string, target: string, headers: http.OutgoingHttpHeaders = {}, body?: Body): Promise<http.IncomingMessage> {
    const url = new URL(target, this.baseUrl);
    return new Promise((resolve, reject) => {
      const req = http.request(url, { method, headers: { ...this.headers, ...headers }, agent: this.agent }, resolve);
      req.on('error', reject);
      if (body instanceof Readable) {
        // A server may answer (e.g. with an error) before the body is sent;
        // the response then decides, and the broken upload is not our error.
        pipeline(body, req).catch((err) => {
          req.destroy(err);
          reject(err);
        });
      } else {
        req.end(body);
      }
    });
  }

  /** A request whose (small) response body is read whole. */
  async request(method: string, target: string, headers: http.OutgoingHttpHeaders = {}, body?: Body): Promise<Reply> {
    const res = await this.send(method, target, headers, body);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    return { status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) };
  }

  private async expect(method: string, target: string, want: number, headers: http.OutgoingHttpHeaders = {}, body?: Body): Promise<Reply> {
    const r = await this.request(method, target, headers, body);
    if (r.status !== want) throw new HttpError(method, target, r.status, r.body.toString());
    return r;
  }

  /** POST an upload session; resolves to its absolute Location. */
  async startUpload(repo: string): Promise<string> {
    const r = await this.expect('POST', `/v2/${repo}/blobs/uploads/`, 202, { 'Content-Length': 0 });
    return this.location(r, 'POST upload');
  }

  /** Monolithic push: POST, then PUT ?digest= with the whole body. */
  async pushBlob(repo: string, src: BlobSource): Promise<PushResult> {
    const digest = await sourceDigest(src);
    const loc = await this.startUpload(repo);
    const r = await this.expect(
      'PUT',
      withQuery(loc, 'digest', digest),
      201,
      { 'Content-Type': 'application/octet-stream', 'Content-Length': src.size },
      src.stream(),
    );
    return { status: r.status, digest, size: src.size, location: this.location(r, 'PUT blob') };
  }

  /**
   * Chunked push: POST, one PATCH with Content-Range per chunkSize bytes, then
   * PUT ?digest= with an empty body. The digest is computed while streaming
   * unless the source knows it already (the registry checks it either way).
   * `resume` continues an existing session from its stored offset instead of
   * POSTing; `onProgress` learns the session and offset after each accepted step.
   */
  async pushBlobChunked(
    repo: string,
    src: BlobSource,
    chunkSize: number,
    opts: { resume?: { location: string; offset: number }; onProgress?: (location: string, offset: number) => void } = {},
  ): Promise<PushResult> {
    let loc = opts.resume ? new URL(opts.resume.location, this.baseUrl).toString() : await this.startUpload(repo);
    const hash = src.digest ? undefined : crypto.createHash('sha256');
    const take = reader(src.stream());
    let off = opts.resume?.offset ?? 0;
    // Bytes already stored still count towards the digest.
    for await (const b of take(off)) hash?.update(b);
    opts.onProgress?.(loc, off);
    for (; off < src.size; off += chunkSize) {
      const n = Math.min(chunkSize, src.size - off);
      const body = Readable.from(
        (async function* () {
          for await (const b of take(n)) {
            hash?.update(b);
            yield b;
          }
        })(),
        { objectMode: false },
      );
      const r = await this.expect(
        'PATCH',
        loc,
        202,
        {
          'Content-Type': 'application/octet-stream',
          'Content-Length': n,
          'Content-Range': `${off}-${off + n - 1}`,
        },
        body,
      );
      loc = this.location(r, 'PATCH');
      opts.onProgress?.(loc, off + n);
    }
    const digest = hash ? 'sha256:' + hash.digest('hex') : src.digest!;
    src.digest = digest;
    const r = await this.expect('PUT', withQuery(loc, 'digest', digest), 201, { 'Content-Length': 0 });
    return { status: r.status, digest, size: src.size, location: this.location(r, 'PUT blob') };
  }

  /** Upload session status: the stored byte count, or null when the session is unknown (404). */
  async uploadOffset(location: string): Promise<number | null> {
    const r = await this.request('GET', location);
    if (r.status === 404) return null;
    if (r.status !== 204) throw new HttpError('GET', location, r.status, r.body.toString());
    const m = /^0-(\d+)$/.exec(String(r.headers.range ?? ''));
    // "0-0" is what distribution reports for an empty session too.
    return m ? (Number(m[1]) === 0 ? 0 : Number(m[1]) + 1) : 0;
  }

  /** Cross-repository mount; true when the registry answered 201 (mounted). */
  async mountBlob(repo: string, digest: string, from: string): Promise<boolean> {
    const q = new URLSearchParams({ mount: digest, from });
    const r = await this.request('POST', `/v2/${repo}/blobs/uploads/?${q}`, { 'Content-Length': 0 });
    if (r.status === 201) return true;
    if (r.status === 202) {
      // Not mounted: the registry opened an upload session instead; drop it.
      await this.request('DELETE', this.location(r, 'POST mount'));
      return false;
    }
    throw new HttpError('POST', `mount ${digest} into ${repo}`, r.status, r.body.toString());
  }

  /**
   * GET a blob, hashing it while it streams (following a redirect to storage).
   * Resolves with the status and, for 200, what was received.
   */
  async pullBlob(repo: string, digest: string): Promise<{ status: number; digest?: string; size?: number }> {
    let target = `/v2/${repo}/blobs/${digest}`;
    for (let hops = 0; ; hops++) {
      const res = await this.send('GET', target);
      const loc = res.headers.location;
      if (res.statusCode! >= 300 && res.statusCode! < 400 && loc && hops < 3) {
        res.resume();
        target = new URL(loc, new URL(target, this.baseUrl)).toString();
        continue;
      }
      if (res.statusCode !== 200) {
        res.resume();
        return { status: res.statusCode! };
      }
      return { status: 200, ...(await hashStream(res)) };
    }
  }

  async headBlob(repo: string, digest: string): Promise<Reply> {
    return this.request('HEAD', `/v2/${repo}/blobs/${digest}`);
  }

  async putManifest(repo: string, ref: string, body: Buffer | string, mediaType: string): Promise<{ digest: string }> {
    const b = Buffer.from(body);
    const r = await this.expect('PUT', `/v2/${repo}/manifests/${ref}`, 201, { 'Content-Type': mediaType, 'Content-Length': b.length }, b);
    const digest = sha256(b);
    const given = r.headers['docker-content-digest'];
    if (given && given !== digest) throw new Error(`PUT manifest: registry says ${given}, content is ${digest}`);
    return { digest };
  }

  async getManifest(repo: string, ref: string, accept = MANIFEST_ACCEPT): Promise<Reply> {
    return this.request('GET', `/v2/${repo}/manifests/${ref}`, { Accept: accept });
  }

  /** One page of a list endpoint: the parsed body and the next page's path, if any. */
  async listPage<T>(target: string): Promise<{ body: T; next?: string }> {
    const r = await this.expect('GET', target, 200);
    const link = ([] as string[]).concat(r.headers.link ?? []).join(', ');
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
    return { body: JSON.parse(r.body.toString()) as T, next: m ? m[1] : undefined };
  }

  /** Every repository name, following `Link` page by page. */
  async catalog(pageSize = 100): Promise<string[]> {
    const names: string[] = [];
    let target: string | undefined = `/v2/_catalog?n=${pageSize}`;
    while (target) {
      const { body, next }: { body: { repositories: string[] }; next?: string } = await this.listPage(target);
      names.push(...(body.repositories ?? []));
      target = next;
    }
    return names;
  }

  /** Every tag of a repository, following `Link` page by page. */
  async tags(repo: string, pageSize?: number): Promise<string[]> {
    const tags: string[] = [];
    let target: string | undefined = `/v2/${repo}/tags/list` + (pageSize ? `?n=${pageSize}` : '');
    while (target) {
      const { body, next }: { body: { tags: string[] | null }; next?: string } = await this.listPage(target);
      tags.push(...(body.tags ?? []));
      target = next;
    }
    return tags;
  }

  private location(r: Reply, what: string): string {
    const loc = r.headers.location;
    if (!loc) throw new Error(`${what}: no Location header`);
    return new URL(loc, this.baseUrl).toString();
  }
}

function withQuery(loc: string, key: string, value: string): string {
  const u = new URL(loc);
  u.searchParams.set(key, value);
  return u.toString();
}

/** Reads a stream in successive slices of exactly n bytes, without copying. */
function reader(s: Readable): (n: number) => AsyncGenerator<Buffer> {
  const it = s[Symbol.asyncIterator]();
  let rest: Buffer | null = null;
  return async function* take(n: number) {
    while (n > 0) {
      let b = rest;
      rest = null;
      if (!b) {
        const next = await it.next();
        if (next.done) throw new Error('blob source ended early');
        b = next.value as Buffer;
      }
      if (b.length > n) {
        rest = b.subarray(n);
        b = b.subarray(0, n);
      }
      n -= b.length;
      yield b;
    }
  };
}

/** An OCI image manifest for a config and layers. */
export function imageManifest(config: Descriptor, layers: Descriptor[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers, ...extra }));
}

/** An OCI image index over manifests. */
export function imageIndex(manifests: (Descriptor & { platform?: { architecture: string; os: string } })[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
}
