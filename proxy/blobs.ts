// Blobs of proxied repositories. A blob the repository does not link yet is
// fetched from the upstream once and written into the store as an ordinary
// monolithic upload (hashed, verified, then committed through the store's GC
// handshake): a cut or corrupt transfer leaves nothing visible. The client that
// asked receives the bytes while they are written (with backpressure: memory
// holds at most a buffer per client), and the fill goes on if it leaves.
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
const LEASE_SETTLE_MS = 50;
const POLL_MS = 200;
/** Bytes a client's stream holds before the fill waits for it. */
const CLIENT_BUFFER = 1 << 20;

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

/** One upstream fetch of a blob into the store, streamed to the clients attached before its first byte. */
class Fill {
  /** The upstream answered: the size when known; undefined when another replica fetches instead. */
  readonly head: Promise<{ size?: number } | undefined>;
  /** The blob is in the store (or, for a fill that waited, another replica finished or gave up). */
  readonly done: Promise<void>;
  private readonly clients: PassThrough[] = [];
  private flowing = false;
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
    const lease = await Lease.acquire(store.driver, holder, LEASE_TTL_MS, LEASE_SETTLE_MS, leasePath(this.d));
    if (!lease) {
      this.answered(undefined);
      return this.waitForOther();
    }
    const renew = setInterval(() => void lease.renew().catch(() => undefined), LEASE_TTL_MS / 3);
    try {
      const res = await this.upstream.request('GET', this.remote, `blobs/${this.d.value}`);
      if (res.statusCode !== 200) throw await this.upstream.refusal(res, `blob ${this.d.value} of ${this.remote}`);
      const length = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
      this.answered({ size: length });
      const upload = await store.uploads.start(this.local).catch((e) => {
        res.destroy();
        throw e;
      });
      try {
        await store.uploads.complete(this.local, upload.id, this.d.value, this.tee(res), length);
      } catch (e) {
        res.destroy();
        await store.uploads.cancel(this.local, upload.id).catch(() => undefined);
        if (isCode(e, 'DIGEST_INVALID', 'SIZE_INVALID')) {
          this.blobs.metrics.error(this.upstream.label, 'invalid');
          throw new UpstreamError('UNAVAILABLE', `the upstream ${this.upstream.label} sent content that does not match ${this.d.value}`, (e as RegistryError).detail);
        }
        throw e;
      }
    } finally {
      clearInterval(renew);
      await lease.release().catch(() => undefined);
    }
  }

  /** The upstream body, passed to the attached clients while the store takes it. */
  private async *tee(res: http.IncomingMessage): AsyncGenerator<Buffer> {
    let complete = false;
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        this.flowing = true;
        this.blobs.metrics.received(this.upstream.label, chunk.length);
        const waits: Promise<void>[] = [];
        for (const c of this.clients) if (!c.destroyed && !c.write(chunk)) waits.push(drained(c));
        if (waits.length) await Promise.all(waits);
        yield chunk;
      }
      complete = true;
    } catch (e) {
      this.blobs.metrics.error(this.upstream.label, 'unavailable');
      throw new UpstreamError('UNAVAILABLE', `the upstream ${this.upstream.label} broke off the transfer of ${this.d.value}: ${(e as Error).message}`);
    } finally {
      // A transfer that ended early (or a store that failed) must not look complete to a client.
      for (const c of this.clients) {
        if (complete) c.end();
        else c.destroy(new Error('transfer from the upstream failed'));
      }
    }
  }

  /** Another replica fetches: done when the blob is stored, or its lease is gone (the caller then tries again). */
  private async waitForOther(): Promise<void> {
    const { store } = this.blobs;
    for (;;) {
      await sleep(POLL_MS);
      if ((await store.globalBlobSize(this.d)) !== undefined) return;
      const lease = await readLease(store.driver, leasePath(this.d));
      if (!lease || lease.until < Date.now()) return;
    }
  }
}

export class ProxyBlobs {
  private readonly fills = new Map<string, Fill>();

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
      // A range, a fill already flowing, or another replica fetching: serve from the store once it holds the blob.
      await fill.done;
      if (await this.linked(t.local, digest)) return next();
    }
    throw err('UNAVAILABLE', `blob ${digest} could not be fetched from the upstream ${label}; retry`);
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
