// The Koa application: request ids, the error table, /v2 routing to one
// handler module per resource, and the health endpoints.
import Koa from 'koa';
import { WriteLostError } from '../storage/driver';
import { err, RegistryError } from '../storage/errors';
import type { ContentStore } from '../storage/store';
import type { Config } from './config';
import { allowAll, type Ctx, type Deps, type Resource, type Source, type State } from './context';
import { errorBody, sendError, storageRefused, toRegistryError } from './errors';
import { healthRoutes, type ReadyStatus } from './health';
import type { Logger } from './log';
import type { Metrics } from './metrics';
import type { Notifier } from './notifications';
import { observe } from './observe';
import { sendfile } from './sendfile';
import { base } from './routes/base';
import { blobs } from './routes/blobs';
import { catalog } from './routes/catalog';
import { manifests } from './routes/manifests';
import { matchRoute, type RouteKind } from './routes/match';
import { referrers } from './routes/referrers';
import { tags } from './routes/tags';
import { uploads } from './routes/uploads';
import { externalPrefix } from './routes/util';

const RESOURCES: Record<RouteKind, Resource> = { base, catalog, blob: blobs, upload: uploads, manifest: manifests, tags, referrers };

export interface AppOptions {
  config: Config;
  store: ContentStore;
  logger: Logger;
  /** False while draining or when storage is unreachable. */
  ready: () => Promise<ReadyStatus>;
  /** True while draining: responses close their connections. */
  draining?: () => boolean;
  /** Request metrics go here; also served at http.debug.prometheus.path unless serveMetrics is false. */
  metrics?: Metrics;
  serveMetrics?: boolean;
  notifier?: Notifier;
  /** Optional auth middleware: checks ctx.state.route and sets ctx.state.auth. */
  auth?: Koa.Middleware;
  /** Optional in-process token service (answers at its own path, e.g. /token). */
  tokens?: Koa.Middleware;
  /** Optional source of content not stored yet (the pull-through cache): see Source. */
  source?: Source;
  /** The admin API's auth and session endpoints (admin/): sets ctx.state.auth for /berth/v1. */
  adminAuth?: Koa.Middleware;
  /** The web UI's page and assets (ui/). */
  ui?: Koa.Middleware;
  /** The admin API's data endpoints (admin/): after adminAuth, which says who the caller is. */
  admin?: Koa.Middleware;
}

export function createApp(opts: AppOptions): Koa<State> {
  const app = new Koa<State>();
  const deps: Deps = { store: opts.store, config: opts.config };
  const { logger } = opts;
  const headers = opts.config.http.headers ?? {};
  const readOnly = opts.config.storage.maintenance.readonly.enabled;

  const metricsPath = opts.config.http.debug.prometheus.path;
  const serveMetrics = opts.metrics && opts.serveMetrics !== false;
  // Behind a proxy that forwards /prefix/..., requests are served as if at / (and URLs we send carry it).
  const prefix = externalPrefix(opts.config);
  if (prefix) {
    app.use((ctx, next) => {
      if (ctx.path.startsWith(`${prefix}/`)) ctx.path = ctx.path.slice(prefix.length);
      return next();
    });
  }
  app.use(sendfile(opts.config.berth.sendfile));
  app.use(
    observe({
      logger,
      accessLog: !opts.config.log.accesslog.disabled,
      metrics: opts.metrics,
      notifier: opts.notifier,
      opsPaths: ['/healthz', '/readyz', ...(serveMetrics ? [metricsPath] : [])],
      draining: opts.draining ?? (() => false),
    }),
  );

  // Errors next, so everything below answers with the spec's JSON bodies.
  app.use(async (ctx, next) => {
    ctx.state.log = {};
    ctx.state.auth = allowAll;
    for (const [k, v] of Object.entries(headers)) ctx.set(k, v);
    if (ctx.path.startsWith('/v2')) ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
    try {
      await next();
    } catch (e) {
      const re = toRegistryError(e);
      // A failed flush is the disk failing, not the client: operators must hear of it.
      if (e instanceof WriteLostError) logger.error('storage lost written data', { requestId: ctx.state.requestId, error: e.message });
      if (storageRefused(e)) logger.error('storage refused a write', { requestId: ctx.state.requestId, error: (e as Error).message });
      if (re) {
        sendError(ctx, re);
      } else {
        logger.error('request failed', { requestId: ctx.state.requestId, method: ctx.method, path: ctx.path, error: (e as Error)?.stack ?? String(e) });
        ctx.status = 500;
        ctx.type = 'application/json';
        ctx.body = errorBody('UNKNOWN', 'internal error', { requestId: ctx.state.requestId });
      }
    }
  });

  app.use(healthRoutes({ ready: opts.ready, metrics: serveMetrics ? opts.metrics : undefined, metricsPath }));
  if (opts.ui) app.use(opts.ui);
  if (opts.adminAuth) app.use(opts.adminAuth);
  if (opts.admin) app.use(opts.admin);
  if (opts.tokens) app.use(opts.tokens);

  // /v2: match the route, check access (auth middleware), let the source (the
  // pull-through cache) fill in what is not stored yet, dispatch by method.
  const dispatch = async (ctx: Koa.ParameterizedContext<State>) => {
    const { kind } = ctx.state.route;
    const handler = RESOURCES[kind][ctx.method as keyof Resource];
    if (readOnly && handler && !['GET', 'HEAD'].includes(ctx.method)) {
      throw err('UNSUPPORTED', 'the registry is in read-only mode (storage.maintenance.readonly)');
    }
    if (!handler) {
      ctx.set('Allow', Object.keys(RESOURCES[kind]).join(', '));
      throw new RegistryError('UNSUPPORTED', `${ctx.method} is not supported here`, undefined, 405);
    }
    await handler(ctx as Ctx);
  };
  const before = [opts.auth, opts.source as unknown as Koa.Middleware<State> | undefined].filter((m) => m !== undefined);
  const run = (ctx: Koa.ParameterizedContext<State>, i: number): Promise<void> =>
    i < before.length ? before[i](ctx, () => run(ctx, i + 1)) : dispatch(ctx);
  app.use(async (ctx, next) => {
    if (!ctx.path.startsWith('/v2')) return next();
    const route = matchRoute(ctx.path);
    if (!route) throw err('UNSUPPORTED', 'no such API endpoint', undefined, 404);
    ctx.state.route = route;
    if (route.name) ctx.state.log.repository = route.name;
    (ctx as Ctx).deps = deps;
    await run(ctx, 0);
  });

  // Last: what no part of berth answered gets the same JSON error as everything
  // else, not Koa's text/plain "Not Found". Other pages and APIs go above this.
  app.use(async (ctx) => {
    throw err('UNSUPPORTED', 'no such endpoint', { method: ctx.method, path: ctx.path }, 404);
  });
  return app;
}
