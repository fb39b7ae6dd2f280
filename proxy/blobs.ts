// Blobs of proxied repositories. A blob the repository does not link yet is
// fetched from the upstream once and written into the store as an ordinary
// monolithic upload (hashed, verified, then committed through the store's GC
// handshake): a cut or corrupt transfer leaves nothing visible. The client that
// asked receives the bytes as they arrive, while the store takes them too:
// memory holds at most a buffer per client and one for the store (each full
// buffer slows the upstream read down), the fill goes on if the client leaves,
// and a store that fails mid-way costs the cache entry, not the client's pull.
//
// One fetch per blob: within a process, requests for a blob being fetched
// attach to the fill (before its first byte) or wait for it; across replicas on
// one store, a lease in the store (_berth/proxy/fills/) picks the replica that
// fetches, and the others wait until the blob is stored, then link it.
import type http from 'node:http';
import { PassThrough } from 'node:stream';
import { parseDigest, type Digest } from '../storage/digest';
import { err, RegistryError } from '../storage/errors';
import { Lease, readLease } from '../storage/lease';
import { paths } from '../storage/paths';
import type { ContentStore } from '../storage/store';
import type { Ctx } from '../server/context';
import type { Target } from './entries';
import type { ProxyMetrics } from './metrics';
import { UpstreamError, type Upstream } from './upstream';

const LEASE_TTL_MS = 30_000;
// At least three times the store's own write time (storage/lease.ts): ~10 ms on a disk, more on S3.
const LEASE_SETTLE_MS = 10;
const POLL_MS = 200;
/** Bytes a client's stream holds before the fill waits for it. */
const CLIENT_BUFFER = 1 << 20;
/** Bytes on their way to the store before the fill waits for it. */
const STORE_BUFFER = 8 << 20;

const leasePath = (d: Digest) => `${paths.root}/_berth/proxy/fills/${d.algorithm}-${d.hex}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isCode(e: unknown, ...codes: string[]): boolean {
  return e instanceof RegistryError && codes.includes(e.code);
}

/** Resolves once the stream drained or went away. */
function drained(s: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}

/** Chunks on their way to the store, bounded in bytes; chunks pushed after the store gave up are dropped. */
class StoreQueue implements AsyncIterable<Buffer> {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private ended = false;
  private error?: Error;
  private closed = false;
  private wakeReader?: () => void;
  private wakeWriter?: () => void;

  /** Resolves when there is room again (or at once, while there is). */
  async push(chunk: Buffer): Promise<void> {
    if (this.closed) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.signal('reader');
    while (this.bytes > STORE_BUFFER && !this.closed) await new Promise<void>((r) => (this.wakeWriter = r));
  }

  /** No more chunks; with an error, the store's read of them fails. */
  end(error?: Error): void {
    this.ended = true;
    this.error = error;
    this.signal('reader');
  }

  private signal(who: 'reader' | 'writer'): void {
    const wake = who === 'reader' ? this.wakeReader : this.wakeWriter;
    if (who === 'reader') this.wakeReader = undefined;
    else this.wakeWriter = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        const c = this.chunks.shift();
        if (c) {
          this.bytes -= c.length;
          this.signal('writer');
          yield c;
        } else if (this.ended) {
          if (this.error) throw this.error;
          return;
        } else {
          await new Promise<void>((r) => (this.wakeReader = r));
        }
      }
    } finally {
      this.abandon();
    }
  }

  /** The store stopped reading (done, or failed): nothing more is kept for it. */
  abandon(): void {
    this.closed = true;
    this.chunks = [];
    this.bytes = 0;
    this.signal('writer');
  }
}

/** One upstream fetch of a blob into the store, streamed to the clients attached before its first byte. */
class Fill {
  /** The upstream answered: the size when known; undefined when another replica fetches instead, or the blob was stored meanwhile. */
  readonly head: Promise<{ size?: number } | undefined>;
  /** The blob is in the store (or, for a fill that waited, another replica finished or gave up). */
  readonly done: Promise<void>;
  private readonly clients: PassThrough[] = [];
  private flowing = false;
  private body?: http.IncomingMessage;
  private answered!: (h: { size?: number } | undefined) => void;

  constructor(
    readonly local: string,
    private readonly remote: string,
    private readonly d: Digest,
    private readonly upstream: Upstream,
    private readonly blobs: ProxyBlobs,
  ) {
    let failed!: (e: unknown) => void;
    this.head = new Promise((resolve, reject) => {
      this.answered = resolve;
      failed = reject;
    });
    this.done = this.run().catch((e) => {
      failed(e);
      for (const c of this.clients) c.destroy(e as Error);
      throw e;
    });
    // Whoever awaits them sees the failure; nobody may be.
    this.head.catch(() => undefined);
    this.done.catch(() => undefined);
  }

  /** A stream of the whole blob from its first byte, or undefined once bytes flow. */
  attach(): PassThrough | undefined {
    if (this.flowing) return undefined;
    const c = new PassThrough({ highWaterMark: CLIENT_BUFFER });
    // A failure reaches the client as a cut response (Koa's pipeline), also before anyone reads it.
    c.on('error', () => undefined);
    this.clients.push(c);
    return c;
  }

  private async run(): Promise<void> {
    const { store, holder } = this.blobs;
    // The upload session opens while the lease settles.
    const [lease, upload] = await Promise.allSettled([Lease.acquire(store.driver, holder, LEASE_TTL_MS, LEASE_SETTLE_MS, leasePath(this.d)), store.uploads.start(this.local)]);
    const cancel = () => (upload.status === 'fulfilled' ? store.uploads.cancel(this.local, upload.value.id).catch(() => undefined) : undefined);
    if (lease.status === 'rejected' || upload.status === 'rejected' || !lease.value) {
      await cancel();
      if (lease.status === 'fulfilled') await lease.value?.release().catch(() => undefined);
      if (lease.status === 'rejected' || upload.status === 'rejected') throw lease.status === 'rejected' ? lease.reason : (upload as PromiseRejectedResult).reason;
      this.answered(undefined);
      return this.waitForOther();
    }
    const held = lease.value;
    const renew = setInterval(() => void held.renew().catch(() => undefined), LEASE_TTL_MS / 3);
    try {
      // The caller looked into the store before this lease was held: a fill that ended meanwhile,
      // in this process or on another replica, may have stored the blob. Fetching it again is what
      // the lease is there to prevent.
      if ((await store.globalBlobSize(this.d)) !== undefined) {
        await cancel();
        this.answered(undefined);
        return;
      }
      const res = await this.upstream.request('GET', this.remote, `blobs/${this.d.value}`);
      this.body = res;
      if (this.blobs.closing) res.destroy(new Error('berth is shutting down'));
      if (res.statusCode !== 200) throw await this.upstream.refusal(res, `blob ${this.d.value} of ${this.remote}`);
      const length = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
      this.answered({ size: length });
      const queue = new StoreQueue();
      const stored = store.uploads.complete(this.local, upload.value.id, this.d.value, queue, length).then(
        () => undefined,
        (e: unknown) => {
          queue.abandon();
          return e ?? new Error('store failed');
        },
      );
      await this.relay(res, queue).catch(async (e) => {
        await stored;
        throw e;
      });
      const failed = await stored;
      if (isCode(failed, 'DIGEST_INVALID', 'SIZE_INVALID')) {
        this.blobs.metrics.error(this.upstream.label, 'invalid');
        throw new UpstreamError('UNAVAILABLE', `the upstream ${this.upstream.label} sent content that does not match ${this.d.value}`, (failed as RegistryError).detail);
      }
      if (failed) throw failed;
    } catch (e) {
      await cancel();
      throw e;
    } finally {
      clearInterval(renew);
      await held.release().catch(() => undefined);
    }
  }

  /** The upstream body to the attached clients and the store; it ends the clients' streams. */
  private async relay(res: http.IncomingMessage, queue: StoreQueue): Promise<void> {
    let complete = false;
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        this.flowing = true;
        this.blobs.metrics.received(this.upstream.label, chunk.length);
        const waits = [queue.push(chunk)];
        for (const c of this.clients) if (!c.destroyed && !c.write(chunk)) waits.push(drained(c));
        await Promise.all(waits);
      }
      complete = true;
      queue.end();
    } catch (e) {
      this.blobs.metrics.error(this.upstream.label, 'unavailable');
      const broken = new UpstreamError('UNAVAILABLE', `the upstream ${this.upstream.label} broke off the transfer of ${this.d.value}: ${(e as Error).message}`);
      queue.end(broken);
      throw broken;
    } finally {
      // A transfer that ended early must not look complete to a client.
      for (const c of this.clients) {
        if (complete) c.end();
        else c.destroy(new Error('transfer from the upstream failed'));
      }
    }
  }

  /** Stop the upstream transfer (at shutdown): the fill fails and leaves nothing behind. */
  abort(): void {
    this.body?.destroy(new Error('berth is shutting down'));
  }

  /** Another replica fetches: done when the blob is stored, or its lease is gone (the caller then tries again). */
  private async waitForOther(): Promise<void> {
    const { store } = this.blobs;
    while (!this.blobs.closing) {
      await sleep(POLL_MS);
      if ((await store.globalBlobSize(this.d)) !== undefined) return;
      const lease = await readLease(store.driver, leasePath(this.d));
      if (!lease || lease.until < Date.now()) return;
    }
  }
}

export class ProxyBlobs {
  private readonly fills = new Map<string, Fill>();
  /** Set at shutdown: fills stop. */
  closing = false;

  constructor(
    readonly store: ContentStore,
    /** This process, as lease holder. */
    readonly holder: string,
    readonly metrics: ProxyMetrics,
  ) {}

  private async linked(local: string, digest: string): Promise<boolean> {
    try {
      await this.store.statBlob(local, digest);
      return true;
    } catch (e) {
      if (isCode(e, 'BLOB_UNKNOWN')) return false;
      throw e;
    }
  }

  /** GET/HEAD of a blob of a proxied repository (ctx.state.route already names it). */
  async serve(ctx: Ctx, t: Target, upstream: Upstream, next: () => Promise<void>): Promise<void> {
    const digest = ctx.state.route.reference!;
    const d = parseDigest(digest);
    const label = t.entry.label;
    if (await this.linked(t.local, digest)) {
      this.metrics.lookup(label, 'blob', 'hit');
      return next();
    }
    this.metrics.lookup(label, 'blob', 'miss');
    if (ctx.method === 'HEAD') return this.head(ctx, t, upstream, digest);
    for (let round = 0; round < 3; round++) {
      if ((await this.store.globalBlobSize(d)) !== undefined) {
        // Stored already for another repository: link it once the upstream confirms this one has it.
        const res = await upstream.request('HEAD', t.remote, `blobs/${digest}`);
        if (res.statusCode !== 200) throw await upstream.refusal(res, `blob ${digest} of ${t.remote}`);
        res.resume();
        if (await this.store.linkBlob(t.local, d)) return next();
      }
      const running = this.fills.get(d.value);
      if (running && running.local !== t.local) {
        // A fill for another repository is waited for, not joined: its bytes are that repository's.
        await running.done.catch(() => undefined);
        continue;
      }
      const fill = running ?? this.start(t, d, upstream);
      const client = ctx.get('Range') ? undefined : fill.attach();
      if (client) {
        const head = await fill.head.catch((e) => {
          client.destroy();
          throw e;
        });
        if (head) {
          ctx.status = 200;
          ctx.set('Docker-Content-Digest', digest);
          ctx.type = 'application/octet-stream';
          ctx.body = client;
          if (head.size !== undefined) ctx.length = head.size;
          return;
        }
        client.destroy();
      }
      // A range, a fill already flowing, another replica fetching, or stored meanwhile: serve from the store once it holds the blob.
      await fill.done;
      if (await this.linked(t.local, digest)) return next();
    }
    throw err('UNAVAILABLE', `blob ${digest} could not be fetched from the upstream ${label}; retry`);
  }

  /** At shutdown, after the requests drained: fills still running (their clients left) stop and clean up. */
  async close(): Promise<void> {
    this.closing = true;
    for (const f of this.fills.values()) f.abort();
    await Promise.allSettled([...this.fills.values()].map((f) => f.done));
  }

  private start(t: Target, d: Digest, upstream: Upstream): Fill {
    const fill = new Fill(t.local, t.remote, d, upstream, this);
    this.fills.set(d.value, fill);
    void fill.done
      .catch(() => undefined)
      .finally(() => {
        if (this.fills.get(d.value) === fill) this.fills.delete(d.value);
      });
    return fill;
  }

  private async head(ctx: Ctx, t: Target, upstream: Upstream, digest: string): Promise<void> {
    const res = await upstream.request('HEAD', t.remote, `blobs/${digest}`);
    if (res.statusCode !== 200) throw await upstream.refusal(res, `blob ${digest} of ${t.remote}`);
    res.resume();
    ctx.status = 200;
    ctx.set('Docker-Content-Digest', digest);
    ctx.type = 'application/octet-stream';
    if (res.headers['content-length'] !== undefined) ctx.length = Number(res.headers['content-length']);
  }
}
