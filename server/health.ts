// Liveness, readiness and the metrics endpoint, served on the main listener and
// on the debug listener (http.debug.addr). Ready means: not draining, and the
// storage backend answers a health check within PROBE_TIMEOUT_MS (checked on
// every probe; orchestrators already space and threshold their probes).
import Router from '@koa/router';
import type Koa from 'koa';
import type { StorageDriver } from '../storage/driver';
import type { Metrics } from './metrics';

const PROBE_TIMEOUT_MS = 5000;

export interface ReadyStatus {
  ok: boolean;
  reason?: string;
  /** The store's indexes: loading until the repository table is complete. */
  indexes?: IndexStatus;
}

export interface IndexStatus {
  state: string;
  repositories: number;
  /** Repositories whose figures are being recomputed. */
  summarizing: number;
  markers: string;
}

export class Readiness {
  private draining = false;

  constructor(
    private readonly driver: StorageDriver,
    private readonly indexes?: () => IndexStatus,
  ) {}

  async status(): Promise<ReadyStatus> {
    if (this.draining) return { ok: false, reason: 'draining' };
    const indexes = this.indexes?.();
    // Catalog pages and the admin API's lists need the repository table.
    if (indexes && indexes.state !== 'ready') return { ok: false, reason: `indexes ${indexes.state}`, indexes };
    let timeout: NodeJS.Timeout | undefined;
    // A backend that hangs is as unready as one that refuses.
    const limit = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => reject(new Error('health check timed out')), PROBE_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.driver.healthCheck(), limit]);
      return this.draining ? { ok: false, reason: 'draining' } : { ok: true, indexes };
    } catch (e) {
      return { ok: false, reason: `storage: ${(e as Error).message}` };
    } finally {
      clearTimeout(timeout);
    }
  }

  get isDraining(): boolean {
    return this.draining;
  }

  drain(): void {
    this.draining = true;
  }
}

export interface HealthRoutesOptions {
  ready: () => Promise<ReadyStatus>;
  /** Serve metrics at metricsPath when set. */
  metrics?: Metrics;
  metricsPath?: string;
}

/** GET /healthz (alive), /readyz (ready for traffic) and, optionally, the metrics path. */
export function healthRoutes(opts: HealthRoutesOptions): Koa.Middleware {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const r = await opts.ready();
    ctx.status = r.ok ? 200 : 503;
    ctx.body = r.ok ? { status: 'ready', indexes: r.indexes } : { status: 'not ready', reason: r.reason, indexes: r.indexes };
  });
  const { metrics } = opts;
  if (metrics) {
    router.get(opts.metricsPath ?? '/metrics', async (ctx) => {
      const { body, contentType } = await metrics.render();
      ctx.type = contentType;
      ctx.body = body;
    });
  }
  return router.routes() as Koa.Middleware;
}
