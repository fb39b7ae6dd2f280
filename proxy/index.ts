// The pull-through cache (issue #15). Names under a configured prefix (or,
// with distribution's single `proxy:`, every name) are pulled from an upstream
// registry and cached in the store; everything else is a hosted repository.
// The core knows this folder only as a Source (server/context.ts), which
// serve.ts wires in. Layout: entries.ts (names -> upstreams), upstream.ts
// (the HTTP client: auth, 429, failures), manifests.ts, blobs.ts (the caching),
// pulls.ts and expiry.ts (cached content as garbage), metrics.ts.
import type client from 'prom-client';
import { err, RegistryError } from '../storage/errors';
import { newHolderId } from '../storage/lease';
import { checkName, checkTag } from '../storage/names';
import { parseDigest } from '../storage/digest';
import type { ContentStore } from '../storage/store';
import type { Config } from '../server/config';
import type { Ctx, Source } from '../server/context';
import type { Logger } from '../server/log';
import { sendManifest } from '../server/routes/manifests';
import { ProxyBlobs } from './blobs';
import { Entries, entriesFrom, type Entry, type Target } from './entries';
import { ProxyManifests } from './manifests';
import { expireCaches } from './expiry';
import { ProxyMetrics } from './metrics';
import { PullLog } from './pulls';
import { readBody, Upstream, UpstreamError } from './upstream';

export interface Proxy {
  source: Source;
  /** For the admin API and UI: the upstream a repository is a cache of, if any. */
  upstreamFor(name: string): { prefix: string; remoteurl: string } | undefined;
  /** Under the collector's lease, before a scheduled GC run: expire cached images (see expiry.ts). */
  beforeGc(holder: string): Promise<void>;
  /** Stop fills still running (cleaning up after them), flush pull times, close upstream connections. */
  close(): Promise<void>;
}

export interface ProxyOptions {
  config: Config;
  store: ContentStore;
  logger: Logger;
  /** The server's Prometheus registry, when metrics are on. */
  registry?: client.Registry;
}

/** A write into a proxied repository: refused, naming the upstream. */
function refusal(method: string, e: Entry): RegistryError {
  const where = e.prefix ? `${e.prefix}/ is a pull-through cache of ${e.remoteurl}` : `this registry is a pull-through cache of ${e.remoteurl}`;
  const detail = { upstream: e.remoteurl };
  if (method === 'DELETE') return err('UNSUPPORTED', `${where}: deletes are not supported there`, detail);
  return err('DENIED', `${where}: pushes are refused there${e.prefix ? `; push to a repository outside ${e.prefix}/` : ''}`, detail);
}

/** Does the hosted repository the client named hold what it asks for? */
async function hostedHas(ctx: Ctx): Promise<boolean> {
  const { store } = ctx.deps;
  const { kind, name, reference } = ctx.state.route;
  try {
    if (kind === 'manifest') await store.getManifest(name!, reference!);
    else await store.statBlob(name!, reference!);
    return true;
  } catch (e) {
    if (e instanceof RegistryError && ['MANIFEST_UNKNOWN', 'BLOB_UNKNOWN', 'NAME_UNKNOWN'].includes(e.code)) return false;
    throw e;
  }
}

/** The upstream's tag list (what can be pulled, as distribution's proxy answers), or the cached tags when the upstream fails. */
async function upstreamTags(ctx: Ctx, t: Target, upstream: Upstream, next: () => Promise<void>): Promise<void> {
  const q = new URLSearchParams();
  for (const k of ['n', 'last']) if (typeof ctx.query[k] === 'string') q.set(k, ctx.query[k] as string);
  let res;
  try {
    res = await upstream.request('GET', t.remote, `tags/list${q.size ? `?${q}` : ''}`);
  } catch (e) {
    if (e instanceof UpstreamError) return next();
    throw e;
  }
  if (res.statusCode === 404) {
    res.resume();
    return next();
  }
  if (res.statusCode !== 200) throw await upstream.refusal(res, `the tags of ${t.remote}`);
  let tags: unknown;
  try {
    tags = JSON.parse((await readBody(res, 16 << 20)).toString('utf8')).tags;
  } catch (e) {
    if (e instanceof UpstreamError) return next();
    tags = undefined;
  }
  const link = res.headers.link;
  if (typeof link === 'string') ctx.set('Link', link.replace(`/v2/${t.remote}/tags/list`, `/v2/${t.local}/tags/list`));
  ctx.type = 'application/json';
  ctx.body = { name: t.local, tags: Array.isArray(tags) ? tags : [] };
}

export function createProxy(opts: ProxyOptions): Proxy | undefined {
  const entries = new Entries(entriesFrom(opts.config));
  if (!entries.enabled) return undefined;
  const { store, logger } = opts;
  const metrics = new ProxyMetrics(opts.registry);
  const upstreams = new Map(
    entries.list.map((e) => [
      e,
      new Upstream({ ...e, onError: (reason) => metrics.error(e.label, reason), onRateLimit: (n) => metrics.rateLimit(e.label, n) }),
    ]),
  );
  const holder = newHolderId();
  const blobs = new ProxyBlobs(store, holder, metrics);
  const manifests = new ProxyManifests(store, metrics, logger);
  // Pull times serve expiry only, which the scheduled GC runs: without it they would pile up unread.
  const expiring = opts.config.berth.gc.enabled && entries.list.some((e) => e.expire > 0 || e.maxsize > 0);
  const pulls = expiring ? new PullLog(store.driver, holder, logger) : undefined;
  for (const e of entries.list) logger.info('pull-through cache', { prefix: e.prefix || '(every repository)', upstream: e.remoteurl, ns: e.ns, ttlMs: e.ttl });

  const source: Source = async (ctx, next) => {
    const route = ctx.state.route;
    if (!route.name) return next();
    const ns = typeof ctx.query.ns === 'string' ? ctx.query.ns : undefined;
    const t = entries.target(route.name, ns);
    if (!t) return next();
    const pull = (ctx.method === 'GET' || ctx.method === 'HEAD') && (route.kind === 'manifest' || route.kind === 'blob');
    // Docker's registry-mirrors: a hosted repository of that name answers first, and writes are its own.
    if (t.fallback && (!pull || (await hostedHas(ctx)))) return next();
    if (!['GET', 'HEAD'].includes(ctx.method)) throw refusal(ctx.method, t.entry);
    checkName(t.local);
    if (t.local !== route.name && !ctx.state.auth.may('repository', t.local, 'pull')) {
      throw err('DENIED', `pulling ${t.local} through the cache of ${t.entry.remoteurl} is not allowed`, { name: t.local });
    }
    route.name = t.local;
    ctx.state.log.repository = t.local;
    const upstream = upstreams.get(t.entry)!;
    if (route.kind === 'tags' && ctx.method === 'GET') return upstreamTags(ctx, t, upstream, next);
    // Referrers, upload status: what the cache holds.
    if (!pull) return next();
    const reference = route.reference!;
    if (route.kind === 'blob' || reference.includes(':')) parseDigest(reference);
    else checkTag(reference);
    try {
      if (route.kind === 'blob') return await blobs.serve(ctx, t, upstream, next);
      const m = await manifests.ensure(t, upstream, reference, ctx.state.requestId);
      pulls?.record(t.local, m.digest);
      if (m.fetched) return sendManifest(ctx, m.fetched, ctx.method === 'GET');
    } catch (e) {
      if (e instanceof UpstreamError && e.retryAfter !== undefined) ctx.set('Retry-After', String(e.retryAfter));
      throw e;
    }
    await next();
  };

  return {
    source,
    upstreamFor(name) {
      const e = entries.byName(name);
      return e && { prefix: e.prefix, remoteurl: e.remoteurl };
    },
    async beforeGc(holder) {
      if (!pulls) return;
      const gc = opts.config.berth.gc;
      try {
        await pulls.flush();
        const r = await expireCaches(store.driver, entries.list, { holder, concurrency: gc.concurrency, sweepBudgetMs: gc.sweepbudget, onSwept: (repos) => store.index.swept(repos) });
        logger.info('pull-through cache expiry', { ...r });
      } catch (e) {
        // The collection goes ahead; expiry tries again next run.
        logger.warn('pull-through cache expiry failed', { error: String(e) });
      }
    },
    async close() {
      await blobs.close();
      await pulls?.close();
      for (const u of upstreams.values()) u.close();
    },
  };
}
