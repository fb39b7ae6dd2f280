// The pull-through cache's metrics, per upstream (its prefix, or the host of
// distribution's single `proxy:`), registered on the server's Prometheus registry.
import client from 'prom-client';

export type Lookup = 'hit' | 'miss' | 'revalidated' | 'stale';

export class ProxyMetrics {
  private readonly lookups: client.Counter;
  private readonly bytes: client.Counter;
  private readonly errors: client.Counter;
  private readonly remaining: client.Gauge;

  /** Without a registry (metrics off) the counters exist but are not exported. */
  constructor(registry?: client.Registry) {
    const registers = registry ? [registry] : [];
    this.lookups = new client.Counter({
      name: 'berth_proxy_lookups_total',
      help: 'Pulls through a pull-through cache by upstream, kind (manifest, blob) and result: hit (served from the store), revalidated (a tag checked with the upstream, unchanged), miss (fetched), stale (a cached tag served while the upstream failed)',
      labelNames: ['upstream', 'kind', 'result'],
      registers,
    });
    this.bytes = new client.Counter({ name: 'berth_proxy_upstream_bytes_total', help: 'Bytes of blobs and manifests received from each upstream', labelNames: ['upstream'], registers });
    this.errors = new client.Counter({
      name: 'berth_proxy_upstream_errors_total',
      help: 'Failed exchanges with each upstream by reason: unavailable (unreachable, 5xx, broken transfer), ratelimited (429), denied (401/403), invalid (content not matching its digest)',
      labelNames: ['upstream', 'reason'],
      registers,
    });
    this.remaining = new client.Gauge({ name: 'berth_proxy_upstream_ratelimit_remaining', help: "The upstream's last RateLimit-Remaining (Docker Hub sends it)", labelNames: ['upstream'], registers });
  }

  lookup(upstream: string, kind: 'manifest' | 'blob', result: Lookup): void {
    this.lookups.inc({ upstream, kind, result });
  }

  received(upstream: string, n: number): void {
    this.bytes.inc({ upstream }, n);
  }

  error(upstream: string, reason: string): void {
    this.errors.inc({ upstream, reason });
  }

  rateLimit(upstream: string, remaining: number): void {
    this.remaining.set({ upstream }, remaining);
  }
}
