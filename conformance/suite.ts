// The run context shared by all categories: options, the client, how checks
// are executed and recorded, and the push helpers categories use for set-up.
import crypto from 'node:crypto';
import { Client, describe, header, type RequestOptions, type Resp } from './client';
import { Abort, Expect, outcomeOf, type CheckResult } from './check';
import { MT, type Blob, type Manifest } from './content';

export const CATEGORIES = ['pull', 'push', 'discovery', 'management'] as const;
export type Category = (typeof CATEGORIES)[number];

export interface ConformanceOptions {
  /** Registry base URL, e.g. http://127.0.0.1:5000 */
  url: string;
  /** Prefix of every repository the suite writes to; `conformance/<random>` by default. */
  namespace?: string;
  /** Repository blobs are mounted from; `<namespace>/mount-source` by default. */
  crossNamespace?: string;
  skip?: Category[];
  /** The registry has deletes turned off: expect 405 UNSUPPORTED instead. */
  deletesDisabled?: boolean;
  username?: string;
  password?: string;
  /** Count SHOULD/MAY shortfalls as failures (for registries that promise them). */
  strict?: boolean;
  /** Run only checks whose "category: name" matches. */
  filter?: RegExp;
  /** Called as each check finishes. */
  onResult?: (r: CheckResult) => void;
}

/** A set-up step failed; the check that needed it fails with this message. */
export class SetupError extends Error {}

export class Suite {
  readonly client: Client;
  readonly ns: string;
  readonly crossNs: string;
  readonly results: CheckResult[] = [];

  constructor(readonly opts: ConformanceOptions) {
    this.client = new Client({ url: opts.url, username: opts.username, password: opts.password });
    this.ns = opts.namespace ?? `conformance/${crypto.randomBytes(4).toString('hex')}`;
    this.crossNs = opts.crossNamespace ?? `${this.ns}/mount-source`;
  }

  repo(purpose: string): string {
    return `${this.ns}/${purpose}`;
  }

  private record(r: CheckResult): void {
    this.results.push(r);
    this.opts.onResult?.(r);
  }

  /** Set-up steps always run: the checks a filter selects depend on them. */
  wanted(category: string, name: string): boolean {
    return !this.opts.filter || name.startsWith('set-up:') || this.opts.filter.test(`${category}: ${name}`);
  }

  skip(category: string, name: string, reason: string): void {
    if (this.wanted(category, name)) this.record({ category, name, outcome: 'skip', failures: [{ level: 'MAY', message: reason }], ms: 0 });
  }

  /** Run one check; resolves true unless it failed (a warning still lets dependants run). */
  async check(category: string, name: string, fn: (e: Expect) => Promise<void>): Promise<boolean> {
    if (!this.wanted(category, name)) return true;
    const e = new Expect();
    const t0 = Date.now();
    try {
      await fn(e);
    } catch (err) {
      if (!(err instanceof Abort)) e.fail('MUST', err instanceof SetupError ? `set-up: ${err.message}` : `error: ${(err as Error).message}`);
    }
    const outcome = outcomeOf(e.failures, this.opts.strict ?? false);
    this.record({ category, name, outcome, failures: e.failures, ms: Date.now() - t0 });
    return outcome !== 'fail';
  }

  req(method: string, target: string, opts?: RequestOptions): Promise<Resp> {
    return this.client.request(method, target, opts);
  }

  /** The Location header of `res` as a request target, with `params` added to its query. */
  location(res: Resp, params: Record<string, string> = {}): string {
    const loc = header(res, 'location');
    if (!loc) throw new SetupError(`${describe(res)} answered ${res.status} without a Location header`);
    const u = new URL(loc, this.client.base);
    for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
    return u.origin === this.client.base.origin ? u.pathname + u.search : u.href;
  }

  async startUpload(repo: string): Promise<Resp> {
    const res = await this.req('POST', `/v2/${repo}/blobs/uploads/`);
    if (res.status !== 202) throw new SetupError(`${describe(res)}: expected 202, got ${res.status}`);
    return res;
  }

  /** POST then PUT ?digest= with the whole body: the push every registry supports. */
  async pushBlob(repo: string, blob: Blob): Promise<void> {
    const start = await this.startUpload(repo);
    const res = await this.req('PUT', this.location(start, { digest: blob.digest }), {
      body: blob.data,
      headers: { 'content-type': 'application/octet-stream' },
    });
    if (res.status !== 201) throw new SetupError(`${describe(res)}: expected 201, got ${res.status} ${res.body.toString().slice(0, 200)}`);
  }

  async pushManifest(repo: string, ref: string, m: Manifest): Promise<Resp> {
    const res = await this.putManifest(repo, ref, m);
    if (res.status !== 201) throw new SetupError(`${describe(res)}: expected 201, got ${res.status} ${res.body.toString().slice(0, 200)}`);
    return res;
  }

  putManifest(repo: string, ref: string, m: Manifest, contentType = m.mediaType): Promise<Resp> {
    return this.req('PUT', `/v2/${repo}/manifests/${ref}`, { body: m.data, headers: { 'content-type': contentType } });
  }

  /** Every media type a client may accept for a manifest. */
  static readonly ACCEPT_ALL = [MT.ociManifest, MT.ociIndex, MT.dockerManifest, MT.dockerList].join(', ');

  getManifest(repo: string, ref: string, method = 'GET', accept = Suite.ACCEPT_ALL): Promise<Resp> {
    return this.req(method, `/v2/${repo}/manifests/${ref}`, { headers: { accept } });
  }
}
