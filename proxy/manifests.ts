// Manifests of proxied repositories. By digest: fetched once, then served from
// the store (content by digest never changes). By tag: fetched on first use
// and stored; afterwards served from the store and checked with the upstream
// (a HEAD, digests compared: Docker Hub does not count HEADs as pulls) at most
// once per ttl per replica. While the upstream fails or rate-limits, a cached
// tag is served as it is (logged, counted as stale) and checked again later.
// A manifest just fetched goes to the client at once; the store takes it
// meanwhile (requests for it until then get the same bytes).
import { LRUCache } from 'lru-cache';
import { digestOf } from '../storage/digest';
import { RegistryError } from '../storage/errors';
import { MAX_MANIFEST_SIZE, parseManifest } from '../storage/manifest';
import type { ContentStore, ManifestContent } from '../storage/store';
import type { Logger } from '../server/log';
import type { Target } from './entries';
import type { Lookup, ProxyMetrics } from './metrics';
import { MANIFEST_ACCEPT, readBody, UpstreamError, type Upstream } from './upstream';

/** After a failed check, a cached tag is trusted this long (at most its ttl) before the upstream is tried again. */
const STALE_RETRY_MS = 15_000;
/** A tag check waits this long for the upstream before the cached tag is served. */
const CHECK_TIMEOUT_MS = 5_000;

interface Refreshed {
  result: Lookup;
  /** What was fetched (a miss), while the store takes it. */
  fetched?: ManifestContent;
}

export class ProxyManifests {
  /** local:tag -> until when the cached tag is served without asking; bounded in bytes. */
  private readonly trusted = new LRUCache<string, number>({ maxSize: 8 << 20, sizeCalculation: (_v, k) => k.length + 16 });
  /** Checks and fetches under way, until what they fetched is stored. */
  private readonly inflight = new Map<string, Promise<Refreshed>>();

  constructor(
    private readonly store: ContentStore,
    private readonly metrics: ProxyMetrics,
    private readonly logger: Logger,
  ) {}

  /**
   * What `reference` names in t.local now, fetching or re-checking it: its
   * digest, and the content when it was just fetched (serve that: the store
   * may not hold it yet); otherwise the store holds it.
   */
  async ensure(t: Target, upstream: Upstream, reference: string, requestId?: string): Promise<{ digest: string; fetched?: ManifestContent }> {
    const key = reference.includes(':') ? `${t.local}@${reference}` : `${t.local}:${reference}`;
    const cached = await this.stored(t.local, reference);
    const fresh = reference.includes(':') || (this.trusted.get(key) ?? 0) > Date.now();
    let r: Refreshed = { result: 'hit' };
    let pending = this.inflight.get(key);
    let started = false;
    if (pending || !cached || !fresh) {
      if (!pending) {
        started = true;
        const refresh = this.refresh(t, upstream, reference, key, cached, requestId);
        pending = refresh.then((x) => x.refreshed);
        this.inflight.set(key, pending);
        const done = pending;
        void refresh.then((x) => x.stored, () => undefined).finally(() => this.inflight.get(key) === done && this.inflight.delete(key));
      }
      r = await pending;
    }
    // A request that joined another's check or fetch caused no upstream request: a hit.
    this.metrics.lookup(t.entry.label, 'manifest', started ? r.result : 'hit');
    if (r.fetched) return { digest: r.fetched.digest, fetched: r.fetched };
    if (!cached) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { name: t.local, reference });
    return { digest: cached };
  }

  private async stored(repo: string, reference: string): Promise<string | undefined> {
    try {
      return (await this.store.getManifest(repo, reference)).digest;
    } catch (e) {
      if (e instanceof RegistryError && (e.code === 'MANIFEST_UNKNOWN' || e.code === 'NAME_UNKNOWN')) return undefined;
      throw e;
    }
  }

  /** A check (HEAD) of a cached tag, or a fetch; `stored` settles once the store holds what was fetched. */
  private async refresh(
    t: Target,
    upstream: Upstream,
    reference: string,
    key: string,
    cached: string | undefined,
    requestId?: string,
  ): Promise<{ refreshed: Refreshed; stored?: Promise<unknown> }> {
    const ttl = t.entry.ttl;
    try {
      if (cached) {
        const res = await upstream.request('HEAD', t.remote, `manifests/${reference}`, { accept: MANIFEST_ACCEPT }, CHECK_TIMEOUT_MS);
        if (res.statusCode !== 200) throw await upstream.refusal(res, `${t.remote}:${reference}`);
        res.resume();
        if (res.headers['docker-content-digest'] === cached) {
          this.trusted.set(key, Date.now() + ttl);
          return { refreshed: { result: 'revalidated' } };
        }
      }
      const fetched = await this.fetch(t, upstream, reference);
      // Until it is stored, a request by digest (containerd's, after a HEAD by tag) gets these bytes too, not another fetch.
      const byDigest = `${t.local}@${fetched.digest}`;
      const known = Promise.resolve<Refreshed>({ result: 'hit', fetched });
      if (byDigest !== key && !this.inflight.has(byDigest)) this.inflight.set(byDigest, known);
      const stored = this.store
        .putManifest(t.local, reference, fetched.bytes, fetched.contentType, { lazy: true })
        .then(
          () => {
            if (!reference.includes(':')) this.trusted.set(key, Date.now() + ttl);
          },
          (e) => this.logger.warn('could not cache a manifest; the next pull fetches it again', { requestId, repository: t.local, reference, error: String(e) }),
        )
        .finally(() => this.inflight.get(byDigest) === known && this.inflight.delete(byDigest));
      return { refreshed: { result: 'miss', fetched }, stored };
    } catch (e) {
      if (!cached || !(e instanceof UpstreamError)) throw e;
      this.logger.warn('serving a cached tag without checking it: the upstream failed', { requestId, upstream: t.entry.label, repository: t.local, tag: reference, error: e.message });
      this.trusted.set(key, Date.now() + Math.min(ttl, STALE_RETRY_MS));
      return { refreshed: { result: 'stale' } };
    }
  }

  /** The manifest from the upstream, its digest checked; not stored yet. */
  private async fetch(t: Target, upstream: Upstream, reference: string): Promise<ManifestContent & { contentType?: string }> {
    const what = `${t.remote}${reference.includes(':') ? '@' : ':'}${reference}`;
    const res = await upstream.request('GET', t.remote, `manifests/${reference}`, { accept: MANIFEST_ACCEPT });
    if (res.statusCode !== 200) throw await upstream.refusal(res, what);
    const bytes = await readBody(res, MAX_MANIFEST_SIZE);
    this.metrics.received(t.entry.label, bytes.length);
    const claimed = [res.headers['docker-content-digest'], reference.includes(':') ? reference : undefined].filter((x): x is string => typeof x === 'string');
    for (const c of claimed) {
      const algorithm = c.startsWith('sha512:') ? 'sha512' : 'sha256';
      if (digestOf(bytes, algorithm) !== c) {
        this.metrics.error(t.entry.label, 'invalid');
        throw new UpstreamError('UNAVAILABLE', `the upstream ${t.entry.label} sent a manifest for ${what} that does not match ${c}`);
      }
    }
    const contentType = String(res.headers['content-type'] ?? '').split(';')[0].trim() || undefined;
    // What the store will refuse is not served either: its own check, before any byte goes out.
    const { mediaType } = parseManifest(bytes, contentType);
    return { digest: digestOf(bytes, reference.startsWith('sha512:') ? 'sha512' : 'sha256'), mediaType, bytes, contentType };
  }
}
