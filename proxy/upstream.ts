// One upstream registry as the cache talks to it. Authentication happens on
// the way: the Docker token flow (a 401 Bearer challenge, a token for the
// repository's pull scope from the realm, anonymous or with the configured
// credentials, reused until it expires) or Basic. Redirects are followed (Docker
// Hub sends blob downloads to a CDN; credentials stay with the registry). The
// upstream's 429 is honoured: no request until its Retry-After, and longer
// waits on repeated ones. After it could not be reached, requests fail fast for
// a moment, so cached tags keep serving without waiting on connect timeouts.
import http from 'node:http';
import https from 'node:https';
import { LRUCache } from 'lru-cache';
import { RegistryError, type ErrorCode } from '../storage/errors';

/** A failure to pass on to the client; `retryAfter` (seconds) goes out as Retry-After. */
export class UpstreamError extends RegistryError {
  constructor(code: ErrorCode, message: string, detail?: unknown, readonly retryAfter?: number) {
    super(code, message, detail);
    this.name = 'UpstreamError';
  }
}

export interface UpstreamOptions {
  remoteurl: string;
  username?: string;
  password?: string;
  /** Names the upstream in messages and metrics. */
  label: string;
  /** Every failed exchange, by kind (unavailable, ratelimited, denied). */
  onError?: (kind: string) => void;
  /** The upstream's RateLimit-Remaining, when it sends one. */
  onRateLimit?: (remaining: number) => void;
}

type Challenge = { scheme: 'bearer'; realm: string; service?: string } | { scheme: 'basic' };

const HEADERS_TIMEOUT_MS = 30_000;
/** A response body that stalls this long is cut. */
const IDLE_TIMEOUT_MS = 30_000;
/** After a connection failure, requests fail at once for this long. */
const DOWN_MS = 2_000;
/** Without a Retry-After, the first 429 blocks this long, doubling on each further one up to MAX. */
const BACKOFF_S = 30;
const MAX_BACKOFF_S = 600;
const REDIRECTS = 5;

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** Read a small body whole (error documents, tokens, manifests), refusing more than `limit` bytes. */
export async function readBody(res: http.IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res) {
      n += (c as Buffer).length;
      if (n > limit) throw new Error(`response larger than ${limit} bytes`);
      chunks.push(c as Buffer);
    }
  } catch (e) {
    res.destroy();
    throw new UpstreamError('UNAVAILABLE', `reading the upstream's answer failed: ${(e as Error).message}`);
  }
  return Buffer.concat(chunks);
}

/** Params of a WWW-Authenticate challenge (`Bearer realm="…",service="…"`). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1].toLowerCase()] = p[2] ?? p[3];
  const scheme = m[1].toLowerCase();
  if (scheme === 'basic') return { scheme };
  if (scheme === 'bearer' && params.realm) return { scheme, realm: params.realm, service: params.service };
  return undefined;
}

function retryAfterSeconds(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (!s) return undefined;
  if (/^\d+$/.test(s.trim())) return Number(s.trim());
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

export class Upstream {
  readonly base: URL;
  readonly label: string;
  private challenge?: Challenge;
  /** Bearer tokens by scope, until they expire; bounded by their length. */
  private readonly tokens = new LRUCache<string, { token: string; until: number }>({ maxSize: 8 << 20, sizeCalculation: (v, k) => v.token.length + k.length });
  private readonly tokenFetches = new Map<string, Promise<string>>();
  private blockedUntil = 0;
  private rateLimited = 0;
  private downUntil = 0;
  private readonly agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }),
  };

  constructor(private readonly opts: UpstreamOptions) {
    this.base = new URL(opts.remoteurl);
    this.label = opts.label;
  }

  close(): void {
    this.agents['http:'].destroy();
    this.agents['https:'].destroy();
  }

  /**
   * GET or HEAD /v2/<repo>/<path>. Resolves with the upstream's answer (2xx, or
   * a 4xx for the caller to map with refusal()); throws UpstreamError when the
   * upstream cannot be reached, fails (5xx) or rate-limits.
   */
  async request(method: 'GET' | 'HEAD', repo: string, path: string, headers: Record<string, string> = {}, timeoutMs = HEADERS_TIMEOUT_MS): Promise<http.IncomingMessage> {
    this.gate();
    let url = new URL(`/v2/${repo}/${path}`, this.base);
    let { auth, fetched } = await this.authorization(repo);
    let challenged = false;
    for (let hop = 0; ; ) {
      const res = await this.send(method, url, auth ? { ...headers, authorization: auth } : headers, timeoutMs);
      const status = res.statusCode ?? 0;
      // Unauthorized with a token fetched for this very request: the token service granted nothing more.
      if (status === 401 && !challenged && !fetched && url.origin === this.base.origin) {
        challenged = true;
        const c = parseChallenge(res.headers['www-authenticate']);
        if (!c || (c.scheme === 'basic' && !this.opts.username)) return res;
        res.resume();
        this.challenge = c;
        this.tokens.delete(this.scope(repo));
        ({ auth, fetched } = await this.authorization(repo));
        if (!auth) return res;
        continue;
      }
      if (status === 429) {
        res.resume();
        throw this.limited(res);
      }
      if (status >= 300 && status < 400 && res.headers.location && hop < REDIRECTS) {
        res.resume();
        url = new URL(res.headers.location, url);
        hop++;
        // The registry's credentials are for the registry, not for the CDN it redirects to.
        if (url.origin !== this.base.origin) auth = undefined;
        continue;
      }
      if (status >= 500) {
        res.resume();
        this.opts.onError?.('unavailable');
        throw new UpstreamError('UNAVAILABLE', `the upstream ${this.label} failed (HTTP ${status}); retry later`, { upstream: this.base.origin });
      }
      this.observeRateLimit(res);
      return res;
    }
  }

  /** The client-facing error for an upstream answer that is not a success (4xx). */
  async refusal(res: http.IncomingMessage, what: string): Promise<RegistryError> {
    let upstream: { code?: string; message?: string } = {};
    try {
      upstream = JSON.parse((await readBody(res, 64 << 10)).toString('utf8'))?.errors?.[0] ?? {};
    } catch {
      // not a registry error document
    }
    const status = res.statusCode ?? 0;
    const said = upstream.message ? `: ${upstream.message}` : '';
    const detail = { upstream: this.base.origin, status, code: upstream.code };
    if (status === 404) {
      const code = (['MANIFEST_UNKNOWN', 'BLOB_UNKNOWN', 'NAME_UNKNOWN'] as ErrorCode[]).find((c) => c === upstream.code) ?? 'NAME_UNKNOWN';
      return new RegistryError(code, `${what} is not on the upstream ${this.label}${said}`, detail);
    }
    if (status === 401 || status === 403) {
      this.opts.onError?.('denied');
      return new RegistryError('DENIED', `the upstream ${this.label} denied access to ${what}${said}`, detail);
    }
    this.opts.onError?.('unavailable');
    return new UpstreamError('UNAVAILABLE', `the upstream ${this.label} answered HTTP ${status} for ${what}${said}`, detail);
  }

  private gate(): void {
    const now = Date.now();
    if (now < this.blockedUntil) {
      const wait = Math.ceil((this.blockedUntil - now) / 1000);
      throw new UpstreamError('TOOMANYREQUESTS', `the upstream ${this.label} is rate-limiting this registry; retry in ${wait} s`, { upstream: this.base.origin }, wait);
    }
    if (now < this.downUntil) {
      throw new UpstreamError('UNAVAILABLE', `the upstream ${this.label} could not be reached moments ago; retry later`, { upstream: this.base.origin });
    }
  }

  private limited(res: http.IncomingMessage): UpstreamError {
    this.rateLimited++;
    const wait = retryAfterSeconds(res.headers['retry-after']) ?? Math.min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (this.rateLimited - 1));
    this.blockedUntil = Math.max(this.blockedUntil, Date.now() + wait * 1000);
    this.opts.onError?.('ratelimited');
    return new UpstreamError('TOOMANYREQUESTS', `the upstream ${this.label} is rate-limiting this registry; retry in ${wait} s`, { upstream: this.base.origin }, wait);
  }

  /** RateLimit-Remaining (Docker Hub: "76;w=21600"); at 0 with a reset time, wait for it rather than earn a 429. */
  private observeRateLimit(res: http.IncomingMessage): void {
    this.rateLimited = 0;
    const remaining = /^\s*(\d+)/.exec(String(res.headers['ratelimit-remaining'] ?? ''))?.[1];
    if (remaining === undefined) return;
    this.opts.onRateLimit?.(Number(remaining));
    const reset = retryAfterSeconds(res.headers['ratelimit-reset'] ?? res.headers['retry-after']);
    if (Number(remaining) === 0 && reset) this.blockedUntil = Math.max(this.blockedUntil, Date.now() + reset * 1000);
  }

  private send(method: string, url: URL, headers: Record<string, string>, timeoutMs = HEADERS_TIMEOUT_MS): Promise<http.IncomingMessage> {
    const agent = this.agents[url.protocol as 'http:' | 'https:'];
    if (!agent) return Promise.reject(new UpstreamError('UNAVAILABLE', `the upstream ${this.label} redirected to ${url.protocol}`));
    return new Promise((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      const req = mod.request(url, { method, agent, headers: { 'user-agent': 'berth', ...headers }, timeout: IDLE_TIMEOUT_MS }, (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      req.on('timeout', () => req.destroy(new Error('connection idle')));
      req.on('error', (e) => {
        clearTimeout(timer);
        this.downUntil = Date.now() + DOWN_MS;
        this.opts.onError?.('unavailable');
        reject(new UpstreamError('UNAVAILABLE', `the upstream ${this.label} cannot be reached: ${e.message}`, { upstream: this.base.origin }));
      });
      req.end();
    });
  }

  private scope(repo: string): string {
    return `repository:${repo}:pull`;
  }

  private basic(): string | undefined {
    const { username, password } = this.opts;
    return username ? `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}` : undefined;
  }

  /** The Authorization header for a repository as the last challenge asked (none before any), and whether a token was fetched for it just now. */
  private async authorization(repo: string): Promise<{ auth?: string; fetched: boolean }> {
    const c = this.challenge;
    if (!c) return { fetched: false };
    if (c.scheme === 'basic') return { auth: this.basic(), fetched: false };
    const scope = this.scope(repo);
    const cached = this.tokens.get(scope);
    if (cached && cached.until > Date.now()) return { auth: `Bearer ${cached.token}`, fetched: false };
    let pending = this.tokenFetches.get(scope);
    if (!pending) {
      pending = this.fetchToken(c, scope).finally(() => this.tokenFetches.delete(scope));
      this.tokenFetches.set(scope, pending);
    }
    return { auth: `Bearer ${await pending}`, fetched: true };
  }

  private async fetchToken(c: { realm: string; service?: string }, scope: string): Promise<string> {
    const url = new URL(c.realm);
    if (c.service) url.searchParams.set('service', c.service);
    url.searchParams.set('scope', scope);
    const basic = this.basic();
    const res = await this.send('GET', url, basic ? { authorization: basic } : {});
    const status = res.statusCode ?? 0;
    if (status === 429) {
      res.resume();
      throw this.limited(res);
    }
    if (status !== 200) {
      const e = await this.refusal(res, `a token for ${scope}`);
      throw status === 401 || status === 403 ? new RegistryError('DENIED', `the upstream ${this.label}'s token service refused berth's credentials`, e.detail) : e;
    }
    let body: { token?: string; access_token?: string; expires_in?: number } = {};
    try {
      body = JSON.parse((await readBody(res, 1 << 20)).toString('utf8'));
    } catch {
      // no token below
    }
    const token = body.token ?? body.access_token;
    if (!token) throw new UpstreamError('UNAVAILABLE', `the upstream ${this.label}'s token service sent no token`);
    // The spec's default lifetime is 60 s; keep a tenth (at most 30 s) in hand.
    const life = Math.max(60, Number(body.expires_in) || 60) * 1000;
    this.tokens.set(scope, { token, until: Date.now() + life - Math.min(30_000, life / 10) });
    return token;
  }
}
