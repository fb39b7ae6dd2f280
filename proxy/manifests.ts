// Manifests of proxied repositories. By digest: fetched once, then served from
// the store (content by digest never changes). By tag: fetched on first use
// and stored; afterwards served from the store and checked with the upstream
// (a HEAD, digests compared: Docker Hub does not count HEADs as pulls) at most
// once per ttl per replica. While the upstream fails or rate-limits, a cached
// tag is served as it is (logged, counted as stale) and checked again later.
import { LRUCache } from 'lru-cache';
import { digestOf } from '../storage/digest';
import { RegistryError } from '../storage/errors';
import { MAX_MANIFEST_SIZE } from '../storage/manifest';
import type { ContentStore } from '../storage/store';
import type { Logger } from '../server/log';
import type { Target } from './entries';
import type { Lookup, ProxyMetrics } from './metrics';
import { MANIFEST_ACCEPT, readBody, UpstreamError, type Upstream } from './upstream';

/** After a failed check, a cached tag is trusted this long (at most its ttl) before the upstream is tried again. */
const STALE_RETRY_MS = 15_000;
/** A tag check waits this long for the upstream before the cached tag is served. */
const CHECK_TIMEOUT_MS = 5_000;

export class ProxyManifests {
  /** local:tag -> until when the cached tag is served without asking; bounded in bytes. */
  private readonly trusted = new LRUCache<string, number>({ maxSize: 8 << 20, sizeCalculation: (_v, k) => k.length + 16 });
  private readonly inflight = new Map<string, Promise<Lookup>>();

  constructor(
    private readonly store: ContentStore,
    private readonly metrics: ProxyMetrics,
    private readonly logger: Logger,
  ) {}

  /** Make sure the store holds what `reference` names in t.local now (fetching or re-checking it); returns its digest. */
  async ensure(t: Target, upstream: Upstream, reference: string, requestId?: string): Promise<string> {
    const label = t.entry.label;
    const key = reference.includes(':') ? `${t.local}@${reference}` : `${t.local}:${reference}`;
    const cached = await this.stored(t.local, reference);
    const fresh = reference.includes(':') || (this.trusted.get(key) ?? 0) > Date.now();
    let result: Lookup = 'hit';
    if (!cached || !fresh) {
      let pending = this.inflight.get(key);
      if (!pending) {
        pending = this.refresh(t, upstream, reference, key, cached, requestId).finally(() => this.inflight.delete(key));
        this.inflight.set(key, pending);
      }
      result = await pending;
    }
    this.metrics.lookup(label, 'manifest', result);
    const digest = result === 'miss' ? await this.stored(t.local, reference) : cached;
    if (!digest) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { name: t.local, reference });
    return digest;
  }

  private async stored(repo: string, reference: string): Promise<string | undefined> {
    try {
      return (await this.store.getManifest(repo, reference)).digest;
    } catch (e) {
      if (e instanceof RegistryError && (e.code === 'MANIFEST_UNKNOWN' || e.code === 'NAME_UNKNOWN')) return undefined;
      throw e;
    }
  }

  private async refresh(t: Target, upstream: Upstream, reference: string, key: string, cached: string | undefined, requestId?: string): Promise<Lookup> {
    const ttl = t.entry.ttl;
    try {
      if (cached) {
        const res = await upstream.request('HEAD', t.remote, `manifests/${reference}`, { accept: MANIFEST_ACCEPT }, CHECK_TIMEOUT_MS);
        if (res.statusCode !== 200) throw await upstream.refusal(res, `${t.remote}:${reference}`);
        res.resume();
        if (res.headers['docker-content-digest'] === cached) {
          this.trusted.set(key, Date.now() + ttl);
          return 'revalidated';
        }
      }
      await this.fetch(t, upstream, reference);
      if (!reference.includes(':')) this.trusted.set(key, Date.now() + ttl);
      return 'miss';
    } catch (e) {
      if (!cached || !(e instanceof UpstreamError)) throw e;
      this.logger.warn('serving a cached tag without checking it: the upstream failed', { requestId, upstream: t.entry.label, repository: t.local, tag: reference, error: e.message });
      this.trusted.set(key, Date.now() + Math.min(ttl, STALE_RETRY_MS));
      return 'stale';
    }
  }

  private async fetch(t: Target, upstream: Upstream, reference: string): Promise<void> {
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
    const type = String(res.headers['content-type'] ?? '').split(';')[0].trim() || undefined;
    await this.store.putManifest(t.local, reference, bytes, type, { lazy: true });
  }
}
