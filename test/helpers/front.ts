// An HTTP front for an upstream registry, like the edge a registry such as
// Docker Hub sits behind, for the pull-through cache tests and benchmark. It
// forwards every request and can shape what comes back: a link of limited
// bandwidth and added latency (a registry across the internet), 429s with
// Retry-After (a rate limit), or every transfer cut at once (the upstream
// dying mid-blob). It counts the requests it forwarded.
import http from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface FrontOptions {
  /** Response body bandwidth, shared by all transfers (bytes/s); unlimited when absent. */
  bytesPerSecond?: number;
  /** Added before each request is forwarded (one round trip to a distant registry). */
  latencyMs?: number;
}

export interface Front {
  url: string;
  host: string;
  /** Requests forwarded to the upstream so far. */
  forwarded: number;
  /** Answer the next `n` requests with 429 and this Retry-After (seconds) instead of forwarding them. */
  rateLimit(n: number, retryAfterSeconds: number): void;
  /** Break every response body in flight. */
  cut(): void;
  /** Headers added to every answer from now on (e.g. RateLimit-Remaining), or none. */
  addHeaders(headers: Record<string, string> | undefined): void;
  close(): Promise<void>;
}

/** A token bucket shared by every transfer through the front. */
class Link {
  private allowance: number;
  private last = Date.now();
  constructor(private readonly rate: number) {
    this.allowance = rate / 20;
  }
  /** Milliseconds to wait before `n` more bytes may go. */
  take(n: number): number {
    const now = Date.now();
    this.allowance = Math.min(this.rate / 20, this.allowance + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    this.allowance -= n;
    return this.allowance >= 0 ? 0 : (-this.allowance * 1000) / this.rate;
  }
}

class Shaped extends Transform {
  constructor(private readonly link: Link) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    const wait = this.link.take(chunk.length);
    if (wait > 0) setTimeout(() => cb(null, chunk), wait);
    else cb(null, chunk);
  }
}

export async function startFront(target: string, opts: FrontOptions = {}): Promise<Front> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const link = opts.bytesPerSecond ? new Link(opts.bytesPerSecond) : undefined;
  const inflight = new Set<http.ServerResponse>();
  let limited = 0;
  let extra: Record<string, string> = {};
  let retryAfter = 0;
  const server = http.createServer(async (req, res) => {
    if (limited > 0) {
      limited--;
      req.resume();
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(retryAfter) });
      res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'rate limit reached' }] }));
      return;
    }
    if (opts.latencyMs) await new Promise((r) => setTimeout(r, opts.latencyMs));
    front.forwarded++;
    inflight.add(res);
    res.on('close', () => inflight.delete(res));
    const headers = { ...req.headers, host: upstream.host };
    const out = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent }, async (answer) => {
      res.writeHead(answer.statusCode ?? 502, { ...answer.headers, ...extra });
      try {
        await (link ? pipeline(answer, new Shaped(link), res) : pipeline(answer, res));
      } catch {
        res.destroy();
      }
    });
    out.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const front: Front = {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    forwarded: 0,
    rateLimit(n, seconds) {
      limited = n;
      retryAfter = seconds;
    },
    cut() {
      for (const res of inflight) res.destroy();
    },
    addHeaders(headers) {
      extra = headers ?? {};
    },
    async close() {
      front.cut();
      agent.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  return front;
}
