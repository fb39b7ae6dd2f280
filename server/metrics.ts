// Prometheus metrics (prom-client), one registry per server. Requests are
// labelled by route template, never by raw path: repository names and digests
// would make the series count unbounded.
import client from 'prom-client';
import type { StorageObserver } from '../storage/instrumented';
import type { ContentStore } from '../storage/store';
import type { RouteKind } from './routes/match';

const TEMPLATES: Record<RouteKind, string> = {
  base: '/v2/',
  catalog: '/v2/_catalog',
  blob: '/v2/{name}/blobs/{digest}',
  upload: '/v2/{name}/blobs/uploads/{uuid}',
  manifest: '/v2/{name}/manifests/{reference}',
  tags: '/v2/{name}/tags/list',
  referrers: '/v2/{name}/referrers/{digest}',
};
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The route label for a request: its template, or a fixed word for anything unmatched. */
export function routeTemplate(kind: RouteKind | undefined, reference: string | undefined, path: string, fixed: readonly string[]): string {
  if (kind === 'upload' && !reference) return '/v2/{name}/blobs/uploads/';
  if (kind) return TEMPLATES[kind];
  if (fixed.includes(path)) return path;
  return path.startsWith('/v2') ? 'unmatched' : 'other';
}

export interface RequestSample {
  method: string;
  route: string;
  status: number;
  seconds: number;
  bytesIn: number;
  bytesOut: number;
}

/** What a garbage-collection run reports (see Metrics.gcRun). */
export interface GcSample {
  ok: boolean;
  bytesFreed?: number;
  blobsDeleted?: number;
  seconds?: number;
}

export class Metrics {
  readonly registry = new client.Registry();
  private readonly requests: client.Counter;
  private readonly duration: client.Histogram;
  private readonly received: client.Counter;
  private readonly sent: client.Counter;
  private readonly storageDuration: client.Histogram;
  private readonly storageErrors: client.Counter;
  private readonly gcRuns: client.Counter;
  private readonly gcFreed: client.Counter;
  private readonly gcBlobs: client.Counter;
  private readonly gcLast: client.Gauge;
  private readonly gcSeconds: client.Gauge;
  readonly notificationsSent: client.Counter;
  readonly notificationsFailed: client.Counter;
  readonly notificationsDropped: client.Counter;
  readonly notificationsPending: client.Gauge;
  private store?: ContentStore;

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry });
    this.requests = new client.Counter({
      name: 'berth_http_requests_total',
      help: 'HTTP requests by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.duration = new client.Histogram({
      name: 'berth_http_request_duration_seconds',
      help: 'Time from request to the last byte of the response, by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.received = new client.Counter({
      name: 'berth_http_received_bytes_total',
      help: 'Request body bytes received, by route template',
      labelNames: ['route'],
      registers,
    });
    this.sent = new client.Counter({
      name: 'berth_http_sent_bytes_total',
      help: 'Response body bytes sent, by route template',
      labelNames: ['route'],
      registers,
    });
    const self = this;
    new client.Gauge({
      name: 'berth_uploads_in_progress',
      help: 'Blob upload requests being handled',
      registers,
      collect() {
        this.set(self.store?.uploads.inProgress ?? 0);
      },
    });
    this.storageDuration = new client.Histogram({
      name: 'berth_storage_operation_duration_seconds',
      help: 'Storage driver operation latency, by driver and operation',
      labelNames: ['driver', 'operation'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.storageErrors = new client.Counter({
      name: 'berth_storage_errors_total',
      help: 'Storage driver operations that failed (not counting missing paths), by driver and operation',
      labelNames: ['driver', 'operation'],
      registers,
    });
    // The store keeps plain counters; publish what they gained since the last scrape.
    const published = new Map<string, number>();
    new client.Counter({
      name: 'berth_cache_lookups_total',
      help: 'In-process cache lookups by cache and result (hit, miss)',
      labelNames: ['cache', 'result'],
      registers,
      collect() {
        for (const [cache, s] of Object.entries(self.store?.cacheStats ?? {})) {
          for (const result of ['hit', 'miss'] as const) {
            const total = result === 'hit' ? s.hits : s.misses;
            const seen = published.get(`${cache}/${result}`) ?? 0;
            if (total > seen) this.inc({ cache, result }, total - seen);
            published.set(`${cache}/${result}`, total);
          }
        }
      },
    });
    new client.Gauge({
      name: 'berth_cache_hit_ratio',
      help: 'Share of cache lookups answered from memory since start, by cache',
      labelNames: ['cache'],
      registers,
      collect() {
        for (const [cache, s] of Object.entries(self.store?.cacheStats ?? {})) {
          const total = s.hits + s.misses;
          this.set({ cache }, total ? s.hits / total : 0);
        }
      },
    });
    this.gcRuns = new client.Counter({ name: 'berth_gc_runs_total', help: 'Garbage-collection runs by result (ok, error)', labelNames: ['result'], registers });
    this.gcFreed = new client.Counter({ name: 'berth_gc_freed_bytes_total', help: 'Bytes of blob data removed by garbage collection', registers });
    this.gcBlobs = new client.Counter({ name: 'berth_gc_deleted_blobs_total', help: 'Blobs removed by garbage collection', registers });
    this.gcLast = new client.Gauge({ name: 'berth_gc_last_run_timestamp_seconds', help: 'When the last garbage-collection run ended (Unix time)', registers });
    this.gcSeconds = new client.Gauge({ name: 'berth_gc_last_run_duration_seconds', help: 'How long the last garbage-collection run took', registers });
    this.notificationsSent = new client.Counter({
      name: 'berth_notifications_sent_total',
      help: 'Events delivered to a notification endpoint',
      labelNames: ['endpoint'],
      registers,
    });
    this.notificationsFailed = new client.Counter({
      name: 'berth_notifications_failures_total',
      help: 'Failed delivery attempts (each is retried) by endpoint',
      labelNames: ['endpoint'],
      registers,
    });
    this.notificationsDropped = new client.Counter({
      name: 'berth_notifications_dropped_total',
      help: 'Events dropped because the endpoint queue was full',
      labelNames: ['endpoint'],
      registers,
    });
    this.notificationsPending = new client.Gauge({
      name: 'berth_notifications_pending',
      help: 'Events queued for an endpoint and not yet delivered',
      labelNames: ['endpoint'],
      registers,
    });
  }

  /** Publish the store's upload and cache counters. */
  bindStore(store: ContentStore): void {
    this.store = store;
  }

  request(s: RequestSample): void {
    const labels = { method: METHODS.has(s.method) ? s.method : 'OTHER', route: s.route, status: String(s.status) };
    this.requests.inc(labels);
    this.duration.observe(labels, s.seconds);
    if (s.bytesIn) this.received.inc({ route: s.route }, s.bytesIn);
    if (s.bytesOut) this.sent.inc({ route: s.route }, s.bytesOut);
  }

  /** For instrumentDriver (storage/instrumented.ts). */
  readonly storage: StorageObserver = (driver, operation, seconds, failed) => {
    this.storageDuration.observe({ driver, operation }, seconds);
    if (failed) this.storageErrors.inc({ driver, operation });
  };

  /** Record one garbage-collection run (called by the GC at its end, also when it failed). */
  gcRun(s: GcSample): void {
    this.gcRuns.inc({ result: s.ok ? 'ok' : 'error' });
    if (s.bytesFreed) this.gcFreed.inc(s.bytesFreed);
    if (s.blobsDeleted) this.gcBlobs.inc(s.blobsDeleted);
    this.gcLast.set(Date.now() / 1000);
    if (s.seconds !== undefined) this.gcSeconds.set(s.seconds);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
