// `berth serve`: wire config, storage, store and app into an HTTP(S) server,
// with readiness, upload purging and a graceful drain on SIGTERM.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import Koa from 'koa';
import { adminFrontDoor } from '../admin/front';
import { adminApi } from '../admin/index';
import { setupAuth } from '../auth/index';
import { createProxy } from '../proxy/index';
import { createDriver } from '../storage/factory';
import { instrumentDriver } from '../storage/instrumented';
import { purgeUploads } from '../storage/purge';
import { BlobCache } from '../storage/blobcache';
import { ContentStore } from '../storage/store';
import { createApp } from './app';
import { malformed, rawMalformedResponse, refuseMalformed } from './malformed';
import { layerUrlPolicy, parseAddr, type Config } from './config';
import { healthRoutes, Readiness } from './health';
import type { Logger } from './log';
import { boundOldGeneration } from './memory';
import { Metrics } from './metrics';
import { Notifier } from './notifications';
import { scheduleGc } from './maintenance';
import { uiAssets } from '../ui/static';
import { checkStore, storeLocation, storeSummary } from './preflight';

export interface Running {
  server: http.Server | https.Server;
  store: ContentStore;
  /** Record GC runs here: metrics.gcRun({ ok, bytesFreed, blobsDeleted, seconds }). Undefined when metrics are off. */
  metrics?: Metrics;
  /** The debug listener (http.debug.addr), if configured. */
  debugServer?: http.Server;
  /** Stop accepting, let in-flight requests finish (up to http.draintimeout), close. */
  shutdown(): Promise<void>;
}

export async function serve(config: Config, logger: Logger): Promise<Running> {
  const metrics = config.http.debug.prometheus.enabled ? new Metrics() : undefined;
  let raw: ReturnType<typeof createDriver>;
  try {
    raw = createDriver(config.storage);
  } catch (e) {
    throw new Error(`cannot open the store at ${storeLocation(config)}: ${(e as Error).message}`);
  }
  await checkStore(raw, config, logger);
  const driver = metrics ? instrumentDriver(raw, metrics.storage) : raw;
  const blobCache = config.berth.blobcache.rootdirectory ? new BlobCache(config.berth.blobcache) : undefined;
  if (blobCache) logger.info('blob cache', { rootdirectory: config.berth.blobcache.rootdirectory, ...(await blobCache.open()) });
  const store = new ContentStore(driver, {
    index: {
      pollMs: config.berth.index.pollinterval,
      snapshotMs: config.berth.index.snapshotinterval,
      feedRetentionMs: config.berth.index.feedretention,
      reconcileMs: config.berth.index.reconcileinterval,
      usageMs: config.berth.usage.cachettl,
      readOnly: config.storage.maintenance.readonly.enabled,
      onError: (what, e) => logger.warn(`${what} failed`, { error: String(e) }),
      onInfo: (what, fields) => logger.info(what, fields),
    },
    deleteEnabled: config.storage.delete.enabled,
    redirect: !config.storage.redirect.disable,
    linkCacheTtlMs: config.berth.linkcachettl,
    manifestCacheBytes: config.berth.manifestcachesize,
    blobCache,
    layerUrls: layerUrlPolicy(config),
  });
  metrics?.bindStore(store);
  const readiness = new Readiness(driver, () => store.index.status());
  // In the background: the registry serves while the repository table loads (/readyz tells when it has).
  void store.index.start();
  const ready = () => readiness.status();
  const draining = () => readiness.isDraining;
  const notifier = new Notifier(config, store, logger, metrics);
  const proxy = createProxy({ config, store, logger, registry: metrics?.registry });
  const debugAddr = config.http.debug.addr;
  const { auth, tokens, parts } = setupAuth(config, logger);
  const ui = config.berth.ui.enabled ? uiAssets() : {};
  if (ui.missing) logger.warn('web UI not served', { reason: ui.missing });
  const app = createApp({
    config,
    store,
    logger,
    ready,
    draining,
    metrics,
    serveMetrics: !debugAddr,
    notifier: notifier.enabled ? notifier : undefined,
    source: proxy?.source,
    auth,
    tokens,
    adminAuth: adminFrontDoor(config, parts),
    admin: adminApi({ store, config, upstreamOf: proxy?.upstreamFor }),
    ui: ui.middleware,
  });
  // Handlers still running (a request cut at the drain deadline still has to
  // finish its clean-up: keep the bytes received so far, close files). A count,
  // not a Set of them: the Set's table, resized every few dozen requests,
  // outlived young collections and piled up in the old generation.
  let inflight = 0;
  let allDone: (() => void) | undefined;
  const callback = app.callback();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const bad = malformed(req);
    if (bad) return refuseMalformed(res, bad);
    inflight++;
    callback(req, res).finally(() => {
      if (--inflight === 0) allDone?.();
    });
  };
  const { tls } = config.http;
  // Host is checked in the handler, which answers with a JSON body (Node's own check answers with none).
  const serverOptions = { requireHostHeader: false };
  const server =
    tls.certificate && tls.key ? https.createServer({ ...tlsOptions(tls), ...serverOptions }, handler) : http.createServer(serverOptions, handler);
  boundOldGeneration();
  // Large layers take longer than Node's default 300 s request timeout: bound
  // slow clients by header and idle timeouts instead.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  server.setTimeout(5 * 60_000);

  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  // Requests Node cannot parse (e.g. body bytes past a Content-Length that lied)
  // still get the spec's JSON error body and API version header.
  server.on('clientError', (e: NodeJS.ErrnoException, socket: net.Socket) => {
    if (e.code === 'ECONNRESET' || !socket.writable) return socket.destroy();
    const status = e.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    socket.end(rawMalformedResponse(status, http.STATUS_CODES[status]!, e.code ?? e.message));
  });

  await listen(server, config.http.addr);
  logger.info('listening', { addr: config.http.addr, tls: Boolean(tls.certificate), ...storeSummary(config) });

  // Health and metrics on their own listener, which stays up while the main one drains.
  let debugServer: http.Server | undefined;
  if (debugAddr) {
    const debug = new Koa();
    debug.use(healthRoutes({ ready, metrics, metricsPath: config.http.debug.prometheus.path }));
    debugServer = http.createServer(debug.callback());
    await listen(debugServer, debugAddr);
    logger.info('debug listener', { addr: debugAddr, metrics: Boolean(metrics) });
  }

  const purge = config.storage.maintenance.uploadpurging;
  let purgeTimer: NodeJS.Timeout | undefined;
  if (purge.enabled && !config.storage.maintenance.readonly.enabled) {
    const run = () =>
      purgeUploads(driver, { olderThanMs: purge.age, dryRun: purge.dryrun }).then(
        (r) => logger.info('upload purge', { ...r }),
        (e) => logger.warn('upload purge failed', { error: String(e) }),
      );
    // The configured interval as given (distribution has no floor); 1 s at least so a zero cannot spin.
    const every = Math.max(1000, purge.interval);
    // The first run within an hour of start (a registry restarted more often than the interval
    // would otherwise never purge), at a random moment, as distribution does: replicas restarted
    // together do not all walk the store at once, nor while they warm up.
    purgeTimer = setTimeout(() => {
      void run();
      purgeTimer = setInterval(run, every);
      purgeTimer.unref();
    }, Math.min(every, 1000 + Math.random() * 3_599_000));
    purgeTimer.unref();
  }

  const stopGc = config.berth.gc.enabled && !config.storage.maintenance.readonly.enabled ? scheduleGc(driver, config, logger, metrics, proxy?.beforeGc, (repos) => store.index.swept(repos)) : undefined;

  const shutdown = async () => {
    if (readiness.isDraining) return;
    readiness.drain();
    clearTimeout(purgeTimer); // the first run's timeout or the interval after it
    stopGc?.();
    logger.info('draining', { graceMs: config.http.draintimeout });
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const deadline = setTimeout(() => {
      logger.warn('drain timeout: closing remaining connections', { open: sockets.size });
      for (const s of sockets) s.destroy();
    }, config.http.draintimeout);
    deadline.unref();
    // Keep-alive connections become idle as their requests end; close them then.
    const idle = setInterval(() => server.closeIdleConnections(), 200);
    await closed;
    if (inflight) {
      let wait: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => (allDone = r)), new Promise((r) => (wait = setTimeout(r, 5000)))]);
      clearTimeout(wait);
    }
    clearInterval(idle);
    clearTimeout(deadline);
    await notifier.close(Math.min(5000, config.http.draintimeout));
    await proxy?.close();
    if (debugServer) {
      const closing = new Promise((resolve) => debugServer!.close(resolve));
      debugServer.closeAllConnections();
      await closing;
    }
    await blobCache?.settled();
    await store.index.stop();
    await driver.close();
    logger.info('stopped');
  };
  return { server, store, metrics, debugServer, shutdown };
}

// Older versions, which distribution also accepts, are not offered by Node's defaults anyway.
const TLS_VERSIONS: Record<string, tls.SecureVersion> = { 'tls1.2': 'TLSv1.2', 'tls1.3': 'TLSv1.3' };

/** distribution's http.tls: certificate and key, optional client CAs (then a client certificate is required), minimum version. */
function tlsOptions(t: Config['http']['tls']): https.ServerOptions {
  const opts: https.ServerOptions = { cert: fs.readFileSync(t.certificate!), key: fs.readFileSync(t.key!) };
  if (t.clientcas?.length) {
    opts.ca = t.clientcas.map((f) => fs.readFileSync(f));
    opts.requestCert = true;
    opts.rejectUnauthorized = true;
  }
  if (t.minimumtls) opts.minVersion = TLS_VERSIONS[t.minimumtls];
  return opts;
}

function listen(server: http.Server | https.Server, addr: string): Promise<void> {
  const { host, port } = parseAddr(addr);
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
