// Liveness, readiness and the metrics endpoint, served on the main listener and
// on the debug listener (http.debug.addr). Readiness follows distribution's
// health.storagedriver: probe the backend every interval and report not ready
// after `threshold` failures in a row; and never ready while draining.
import Router from '@koa/router';
import type Koa from 'koa';
import type { StorageDriver } from '../storage/driver';
import type { Config } from './config';
import type { Logger } from './log';
import type { Metrics } from './metrics';

export interface ReadyStatus {
  ok: boolean;
  reason?: string;
}

export class Readiness {
  private draining = false;
  private failures = 0;
  private lastError = '';
  private probing = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly driver: StorageDriver,
    private readonly cfg: Config['health']['storagedriver'],
    private readonly logger: Logger,
  ) {}

  /** Probe once (so a server starts ready or not on facts), then every interval. */
  async start(): Promise<void> {
    if (!this.cfg.enabled) return;
    await this.probe();
    this.timer = setInterval(() => void this.probe(), Math.max(100, this.cfg.interval));
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    let timeout: NodeJS.Timeout | undefined;
    try {
      // A backend that hangs is as unready as one that refuses.
      const limit = new Promise<never>((_, reject) => {
        timeout = setTimeout(() => reject(new Error('health check timed out')), Math.max(1000, this.cfg.interval));
      });
      await Promise.race([this.driver.healthCheck(), limit]);
      if (this.failures >= this.cfg.threshold) this.logger.info('storage reachable again: ready');
      this.failures = 0;
    } catch (e) {
      this.failures++;
      this.lastError = (e as Error).message;
      if (this.failures === this.cfg.threshold) this.logger.warn('storage unreachable: not ready', { error: this.lastError, failures: this.failures });
    } finally {
      clearTimeout(timeout);
      this.probing = false;
    }
  }

  status(): ReadyStatus {
    if (this.draining) return { ok: false, reason: 'draining' };
    if (this.failures >= this.cfg.threshold) return { ok: false, reason: `storage: ${this.lastError}` };
    return { ok: true };
  }

  get isDraining(): boolean {
    return this.draining;
  }

  drain(): void {
    this.draining = true;
  }

  stop(): void {
    clearInterval(this.timer);
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
    ctx.body = r.ok ? { status: 'ready' } : { status: 'not ready', reason: r.reason };
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
