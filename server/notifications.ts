// Webhook notifications in CNCF distribution's format: after a push, pull,
// mount or delete has been answered, an event is queued for every endpoint and
// posted from a bounded in-memory queue by a background loop, with retries and
// backoff. Requests never wait for delivery; a full queue drops new events
// (counted in berth_notifications_dropped_total).
import crypto from 'node:crypto';
import os from 'node:os';
import { parseDigest } from '../storage/digest';
import type { ContentStore } from '../storage/store';
import type { Config } from './config';
import type { Ctx } from './context';
import type { Logger } from './log';
import type { Metrics } from './metrics';
import { urlFor } from './routes/util';

export const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';
const BLOB_MEDIA_TYPE = 'application/octet-stream';
// Events posted in one envelope at most.
const MAX_BATCH = 100;

export type Action = 'push' | 'pull' | 'mount' | 'delete';

export interface Event {
  id: string;
  timestamp: string;
  action: Action;
  target: {
    mediaType?: string;
    size?: number;
    length?: number;
    digest?: string;
    repository: string;
    fromRepository?: string;
    url?: string;
    tag?: string;
  };
  request: { id: string; addr: string; host: string; method: string; useragent: string };
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

export type EndpointConfig = NonNullable<Config['notifications']['endpoints']>[number];

/** The event a finished request gives rise to, if any (before the blob size is filled in). */
export function eventFor(ctx: Ctx, bytesIn: number, source: Event['source'], includeReferences: boolean): Event | undefined {
  const route = ctx.state.route;
  if (!route?.name) return undefined;
  const name = route.name;
  const method = ctx.method;
  const status = ctx.status;
  const digest = ctx.response.get('Docker-Content-Digest') || undefined;
  let action: Action | undefined;
  let target: Event['target'] | undefined;
  const ref = route.reference ?? '';
  const tag = includeReferences && ref && !ref.includes(':') ? ref : undefined;
  const manifestUrl = (d: string) => urlFor(ctx, `/v2/${name}/manifests/${d}`);
  const blobUrl = (d: string) => urlFor(ctx, `/v2/${name}/blobs/${d}`);
  if (route.kind === 'manifest') {
    if (method === 'GET' && status === 200 && digest) {
      action = 'pull';
      const size = Number(ctx.response.get('Content-Length')) || undefined;
      target = { mediaType: ctx.response.type, size, length: size, digest, repository: name, url: manifestUrl(digest), tag };
    } else if (method === 'PUT' && status === 201 && digest) {
      action = 'push';
      target = { mediaType: ctx.get('Content-Type').split(';')[0], size: bytesIn, length: bytesIn, digest, repository: name, url: manifestUrl(digest), tag };
    } else if (method === 'DELETE' && status === 202) {
      action = 'delete';
      target = ref.includes(':') ? { digest: ref, repository: name } : { repository: name, tag: ref };
    }
  } else if (route.kind === 'blob') {
    if (method === 'GET' && (status === 200 || status === 206 || status === 307) && digest) {
      action = 'pull';
      target = { mediaType: BLOB_MEDIA_TYPE, digest, repository: name, url: blobUrl(digest) };
    } else if (method === 'DELETE' && status === 202) {
      action = 'delete';
      target = { digest: ref, repository: name };
    }
  } else if (route.kind === 'upload' && status === 201 && digest && (method === 'PUT' || method === 'POST')) {
    const mount = method === 'POST' && typeof ctx.query.mount === 'string';
    action = mount ? 'mount' : 'push';
    target = { mediaType: BLOB_MEDIA_TYPE, digest, repository: name, url: blobUrl(digest) };
    if (mount && typeof ctx.query.from === 'string') target.fromRepository = ctx.query.from;
  }
  if (!action || !target) return undefined;
  return {
    id: crypto.randomUUID(),
    timestamp: new Date().toISOString(),
    action,
    target,
    request: {
      id: ctx.state.requestId,
      addr: `${ctx.state.peer.address ?? ''}:${ctx.state.peer.port ?? ''}`,
      host: ctx.host,
      method,
      useragent: ctx.get('User-Agent'),
    },
    actor: ctx.state.auth?.subject ? { name: ctx.state.auth.subject } : {},
    source,
  };
}

class Endpoint {
  private readonly queue: Event[] = [];
  private running?: Promise<void>;
  private failures = 0;
  private stopped = false;
  private wake?: () => void;
  private readonly ignoredTypes: Set<string>;
  private readonly ignoredActions: Set<string>;
  private readonly headers: Record<string, string>;

  constructor(
    private readonly cfg: EndpointConfig,
    private readonly logger: Logger,
    private readonly metrics?: Metrics,
  ) {
    this.ignoredTypes = new Set([...(cfg.ignoredmediatypes ?? []), ...(cfg.ignore.mediatypes ?? [])]);
    this.ignoredActions = new Set(cfg.ignore.actions ?? []);
    this.headers = Object.fromEntries(Object.entries(cfg.headers ?? {}).map(([k, v]) => [k, v.join(', ')]));
    this.headers['Content-Type'] = EVENTS_MEDIA_TYPE;
  }

  get name(): string {
    return this.cfg.name;
  }

  get pending(): number {
    return this.queue.length;
  }

  enqueue(e: Event): void {
    if (this.stopped) return;
    if (this.ignoredActions.has(e.action) || (e.target.mediaType && this.ignoredTypes.has(e.target.mediaType))) return;
    if (this.queue.length >= this.cfg.queuesize) {
      this.metrics?.notificationsDropped.inc({ endpoint: this.name });
      if (this.failures < this.cfg.threshold) this.logger.warn('notification queue full: dropping events', { endpoint: this.name });
      return;
    }
    this.queue.push(e);
    this.metrics?.notificationsPending.set({ endpoint: this.name }, this.queue.length);
    this.running ??= this.run().finally(() => (this.running = undefined));
  }

  private async run(): Promise<void> {
    while (this.queue.length && !this.stopped) {
      const batch = this.queue.slice(0, MAX_BATCH);
      if (await this.send(batch)) {
        this.queue.splice(0, batch.length);
        this.metrics?.notificationsSent.inc({ endpoint: this.name }, batch.length);
        this.metrics?.notificationsPending.set({ endpoint: this.name }, this.queue.length);
        if (this.failures >= this.cfg.threshold) this.logger.info('notification endpoint recovered', { endpoint: this.name });
        this.failures = 0;
      } else {
        this.failures++;
        this.metrics?.notificationsFailed.inc({ endpoint: this.name });
        await this.sleep(this.delay());
      }
    }
  }

  /**
   * distribution's meaning: retry at once up to `threshold` failures in a
   * row, then wait `backoff`, doubling per further failure up to a minute.
   */
  private delay(): number {
    const { threshold, backoff } = this.cfg;
    if (this.failures < threshold) return Math.min(100, backoff);
    return Math.min(backoff * 2 ** (this.failures - threshold), Math.max(backoff, 60_000));
  }

  private async send(events: Event[]): Promise<boolean> {
    try {
      const res = await fetch(this.cfg.url, {
        method: 'POST',
        headers: this.headers,
        body: JSON.stringify({ events }),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.cfg.timeout),
      });
      await res.arrayBuffer();
      if (res.status >= 200 && res.status < 400) return true;
      this.logFailure(`HTTP ${res.status}`);
    } catch (e) {
      this.logFailure((e as Error).message);
    }
    return false;
  }

  private logFailure(error: string): void {
    // Once per outage, not once per retry.
    if (this.failures + 1 === this.cfg.threshold) {
      this.logger.warn('notification endpoint failing: backing off', { endpoint: this.name, error, pending: this.queue.length });
    } else {
      this.logger.debug('notification delivery failed', { endpoint: this.name, error });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** Deliver what is queued, for up to ms; then stop. */
  async close(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    // A failing endpoint should be retried now rather than after its backoff.
    this.wake?.();
    await Promise.race([this.running, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
    this.stopped = true;
    this.wake?.();
    if (this.queue.length) this.logger.warn('notifications not delivered at shutdown', { endpoint: this.name, pending: this.queue.length });
  }
}

export class Notifier {
  private readonly endpoints: Endpoint[];
  private readonly source: Event['source'];
  private readonly includeReferences: boolean;

  constructor(
    config: Config,
    private readonly store: ContentStore,
    private readonly logger: Logger,
    metrics?: Metrics,
  ) {
    const n = config.notifications;
    this.endpoints = (n.endpoints ?? []).filter((e) => !e.disabled).map((e) => new Endpoint(e, logger, metrics));
    this.includeReferences = n.events.includereferences;
    this.source = { addr: `${os.hostname()}:${config.http.addr.split(':').pop()}`, instanceID: crypto.randomUUID() };
  }

  get enabled(): boolean {
    return this.endpoints.length > 0;
  }

  /** Called once the response has been sent in full. */
  requestDone(ctx: Ctx, bytesIn: number): void {
    if (!this.enabled) return;
    const e = eventFor(ctx, bytesIn, this.source, this.includeReferences);
    if (!e) return;
    const publish = () => {
      for (const ep of this.endpoints) ep.enqueue(e);
    };
    if (e.target.mediaType !== BLOB_MEDIA_TYPE || !e.target.digest) return publish();
    // Blob sizes are not in the response; the store has them cached.
    this.store
      .globalBlobSize(parseDigest(e.target.digest))
      .then((size) => {
        e.target.size = e.target.length = size;
      })
      .catch((err) => this.logger.debug('blob size for event', { error: String(err) }))
      .finally(publish);
  }

  /** Events queued per endpoint. */
  pending(): Record<string, number> {
    return Object.fromEntries(this.endpoints.map((e) => [e.name, e.pending]));
  }

  async close(ms: number): Promise<void> {
    await Promise.all(this.endpoints.map((e) => e.close(ms)));
  }
}
