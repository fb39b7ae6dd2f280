// HTTP client for the conformance suite: node:http(s) for exact control over
// headers (no automatic Accept/Accept-Encoding), Docker token auth on a 401
// Bearer challenge, and a raw-socket mode for requests that must lie about
// their body or hang up half way.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';

export interface Resp {
  method: string;
  /** Request target as sent (path and query), for messages. */
  target: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RequestOptions {
  headers?: Record<string, string | string[]>;
  body?: Buffer | string;
  /** Follow 307/302 redirects (blob GET/HEAD may redirect to a storage backend). */
  follow?: boolean;
}

export interface ClientOptions {
  url: string;
  username?: string;
  password?: string;
  timeoutMs?: number;
}

/** A /v2 response that broke a rule the spec sets for every response. */
export interface Violation {
  kind: '5xx' | 'api-version';
  what: string;
}

export function header(res: Resp, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** "METHOD target" for messages, with opaque long query values (upload state tokens) shortened. */
export function describe(res: Resp): string {
  const target = res.target.replace(/([?&][^=&]+=)([^&]{80,})/g, (_, k: string, v: string) => `${k}${v.slice(0, 16)}…`);
  return `${res.method} ${target}`;
}

// Repository (or catalog) a request is scoped to, so a token obtained for it
// is reused instead of paying a 401 round trip on every request.
function scopeKey(path: string): string | undefined {
  if (path.startsWith('/v2/_catalog')) return '_catalog';
  const m = /^\/v2\/(.+?)\/(?:blobs|manifests|tags|referrers)\//.exec(path);
  return m?.[1];
}

/** Parse `Bearer realm="..",service="..",scope=".."` into its parameters. */
export function parseChallenge(value: string): { scheme: string; params: Record<string, string> } {
  const sp = value.indexOf(' ');
  const scheme = (sp < 0 ? value : value.slice(0, sp)).toLowerCase();
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)="([^"]*)"/g;
  for (let m = re.exec(value); m; m = re.exec(value)) params[m[1].toLowerCase()] = m[2];
  return { scheme, params };
}

export class Client {
  readonly base: URL;
  readonly violations: Violation[] = [];
  private readonly tokens = new Map<string, string>();
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;

  constructor(private readonly opts: ClientOptions) {
    this.base = new URL(opts.url);
    this.timeoutMs = opts.timeoutMs ?? 30000;
    this.agent = this.base.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
  }

  private basic(): string | undefined {
    if (this.opts.username === undefined) return undefined;
    return 'Basic ' + Buffer.from(`${this.opts.username}:${this.opts.password ?? ''}`).toString('base64');
  }

  /** Authorization header to send on a request to `path`, if any is known. */
  authFor(path: string): string | undefined {
    const key = scopeKey(path);
    const token = key === undefined ? undefined : this.tokens.get(key);
    return token ? `Bearer ${token}` : this.basic();
  }

  async request(method: string, target: string, opts: RequestOptions = {}): Promise<Resp> {
    let res = await this.once(method, target, opts, this.authFor(target));
    if (res.status === 401) {
      const auth = await this.answerChallenge(target, header(res, 'www-authenticate'));
      if (auth) res = await this.once(method, target, opts, auth);
    }
    let hops = 0;
    while (opts.follow && [301, 302, 303, 307, 308].includes(res.status) && header(res, 'location') && hops++ < 5) {
      const next = new URL(header(res, 'location')!, new URL(target, this.base));
      // Credentials go to the registry only, never to a redirect target elsewhere.
      res = await this.send(method, next, { ...opts, body: undefined }, next.origin === this.base.origin ? this.authFor(next.pathname) : undefined);
    }
    return res;
  }

  private async answerChallenge(target: string, challenge: string | undefined): Promise<string | undefined> {
    if (!challenge) return undefined;
    const { scheme, params } = parseChallenge(challenge);
    if (scheme === 'basic') return this.basic();
    if (scheme !== 'bearer' || !params.realm) return undefined;
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    for (const s of (params.scope ?? '').split(' ').filter(Boolean)) realm.searchParams.append('scope', s);
    const basic = this.basic();
    const res = await this.send('GET', realm, { headers: basic ? { authorization: basic } : {} }, undefined);
    if (res.status !== 200) throw new Error(`token request ${realm.pathname}${realm.search} answered ${res.status}: ${res.body.toString().slice(0, 200)}`);
    const body = JSON.parse(res.body.toString()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new Error('token response has neither token nor access_token');
    const key = scopeKey(target);
    if (key !== undefined) this.tokens.set(key, token);
    return `Bearer ${token}`;
  }

  private once(method: string, target: string, opts: RequestOptions, auth: string | undefined): Promise<Resp> {
    // A path is sent exactly as written: "/v2/../x" must reach the server, not be resolved here.
    if (target.startsWith('/')) return this.send(method, this.base, opts, auth, target);
    return this.send(method, new URL(target), opts, auth);
  }

  private send(method: string, url: URL, opts: RequestOptions, auth: string | undefined, path = url.pathname + url.search): Promise<Resp> {
    const body = typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body;
    const headers: Record<string, string | string[]> = { ...opts.headers };
    if (auth && !Object.keys(headers).some((k) => k.toLowerCase() === 'authorization')) headers.authorization = auth;
    if (body !== undefined || ['POST', 'PUT', 'PATCH'].includes(method)) headers['content-length'] ??= String(body?.length ?? 0);
    const target = path;
    const mod = url.protocol === 'https:' ? https : http;
    const sameOrigin = url.origin === this.base.origin;
    return new Promise<Resp>((resolve, reject) => {
      const req = mod.request(
        { protocol: url.protocol, hostname: url.hostname, port: url.port, path, method, headers, agent: sameOrigin ? this.agent : undefined, timeout: this.timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('aborted', () => {
            const got = chunks.reduce((n, c) => n + c.length, 0);
            reject(new Error(`${method} ${target}: answered ${res.statusCode}, then closed the connection after ${got} of ${res.headers['content-length'] ?? '?'} body bytes`));
          });
          res.on('error', reject);
          res.on('end', () => {
            const r: Resp = { method, target, status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
            if (sameOrigin) this.observe(r);
            resolve(r);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${target}: no answer within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Record responses that break the rules every /v2 response must follow. */
  observe(r: Resp): void {
    if (!r.target.startsWith('/v2')) return;
    if (r.status >= 500) this.violations.push({ kind: '5xx', what: `${describe(r)} answered ${r.status}` });
    if (header(r, 'docker-distribution-api-version') !== 'registry/2.0') {
      this.violations.push({ kind: 'api-version', what: `${describe(r)} (${r.status}) had Docker-Distribution-API-Version ${JSON.stringify(header(r, 'docker-distribution-api-version') ?? null)}` });
    }
  }

  /**
   * Send bytes on a fresh socket exactly as given (the head is built here, so
   * Content-Length may lie). With `hangUpAfterMs` the socket is destroyed that
   * long after the last byte and no answer is awaited.
   */
  async raw(
    method: string,
    target: string,
    headers: Record<string, string>,
    body: Buffer,
    opts: { hangUpAfterMs?: number; waitMs?: number } = {},
  ): Promise<Resp | undefined> {
    const all: Record<string, string> = { host: this.base.host, connection: 'close', ...headers };
    const auth = this.authFor(target);
    if (auth) all.authorization = auth;
    const head = `${method} ${target} HTTP/1.1\r\n` + Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
    return this.rawHead(head, body, opts);
  }

  /**
   * Send a request head exactly as written (request line, header lines and
   * the blank line: even one no HTTP client would send), then `body`, on a
   * fresh socket; as raw() otherwise.
   */
  async rawHead(head: string, body: Buffer = Buffer.alloc(0), opts: { hangUpAfterMs?: number; waitMs?: number } = {}): Promise<Resp | undefined> {
    const [method = '', target = ''] = head.slice(0, head.indexOf('\r\n')).split(' ');
    const port = Number(this.base.port || (this.base.protocol === 'https:' ? 443 : 80));
    const sock: net.Socket =
      this.base.protocol === 'https:'
        ? tls.connect({ host: this.base.hostname, port, servername: this.base.hostname })
        : net.connect({ host: this.base.hostname, port });
    const got: Buffer[] = [];
    sock.on('data', (c: Buffer) => got.push(c));
    const ended = new Promise<void>((resolve) => {
      sock.on('close', () => resolve());
      sock.on('error', () => resolve());
    });
    sock.write(head);
    sock.write(body);
    if (opts.hangUpAfterMs !== undefined) {
      await new Promise((r) => setTimeout(r, opts.hangUpAfterMs));
      sock.destroy();
      await ended;
      return undefined;
    }
    // The answer may come while the server still expects body bytes; stop
    // waiting once a complete response is in or after waitMs.
    const deadline = Date.now() + (opts.waitMs ?? 5000);
    let parsed: Resp | undefined;
    let closed = false;
    void ended.then(() => (closed = true));
    while (!(parsed = parseRaw(method, target, Buffer.concat(got), closed)) && Date.now() < deadline && !closed) {
      await Promise.race([ended, new Promise((r) => setTimeout(r, 20))]);
    }
    parsed ??= parseRaw(method, target, Buffer.concat(got), true);
    sock.destroy();
    if (parsed) this.observe(parsed);
    return parsed;
  }
}

/**
 * A complete HTTP/1.1 response in `buf`, or undefined if more bytes are needed.
 * Without Content-Length or chunking the body runs to the close: `closed` says it came.
 */
function parseRaw(method: string, target: string, buf: Buffer, closed: boolean): Resp | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1] ?? 0);
  const headers: http.IncomingHttpHeaders = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let rest = buf.subarray(end + 4);
  if (method === 'HEAD' || status === 204 || status === 304) rest = Buffer.alloc(0);
  else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (rest.length < n) return undefined;
    rest = rest.subarray(0, n);
  } else if (/chunked/i.test(String(headers['transfer-encoding'] ?? ''))) {
    const out: Buffer[] = [];
    let p = 0;
    for (;;) {
      const le = rest.indexOf('\r\n', p);
      if (le < 0) return undefined;
      const size = parseInt(rest.subarray(p, le).toString(), 16);
      if (size === 0) break;
      if (rest.length < le + 2 + size + 2) return undefined;
      out.push(rest.subarray(le + 2, le + 2 + size));
      p = le + 2 + size + 2;
    }
    rest = Buffer.concat(out);
  } else if (!closed) return undefined;
  return { method, target, status, headers, body: rest };
}
