// `berth serve`: wire config, storage, store and app into an HTTP(S) server,
// with readiness, upload purging and a graceful drain on SIGTERM.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { createDriver } from '../storage/factory';
import { purgeUploads } from '../storage/purge';
import { ContentStore } from '../storage/store';
import { createApp } from './app';
import { parseAddr, type Config } from './config';
import type { Logger } from './log';

export interface Running {
  server: http.Server | https.Server;
  store: ContentStore;
  /** Stop accepting, let in-flight requests finish (up to http.draintimeout), close. */
  shutdown(): Promise<void>;
}

export async function serve(config: Config, logger: Logger): Promise<Running> {
  const driver = createDriver(config.storage);
  const store = new ContentStore(driver, {
    deleteEnabled: config.storage.delete.enabled,
    redirect: !config.storage.redirect.disable,
    linkCacheTtlMs: config.berth.linkcachettl,
    manifestCacheBytes: config.berth.manifestcachesize,
  });
  let draining = false;
  const ready = async () => {
    if (draining) return { ok: false, reason: 'draining' };
    try {
      await driver.healthCheck();
      return { ok: true };
    } catch (e) {
      return { ok: false, reason: `storage: ${(e as Error).message}` };
    }
  };
  const app = createApp({ config, store, logger, ready });
  const handler = app.callback();
  const { tls } = config.http;
  const server =
    tls.certificate && tls.key
      ? https.createServer({ cert: fs.readFileSync(tls.certificate), key: fs.readFileSync(tls.key) }, handler)
      : http.createServer(handler);
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

  const { host, port } = parseAddr(config.http.addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  logger.info('listening', { addr: config.http.addr, tls: Boolean(tls.certificate), storage: driver.name });

  const purge = config.storage.maintenance.uploadpurging;
  let purgeTimer: NodeJS.Timeout | undefined;
  if (purge.enabled && !config.storage.maintenance.readonly.enabled) {
    const run = () =>
      purgeUploads(driver, { olderThanMs: purge.age, dryRun: purge.dryrun }).then(
        (r) => logger.info('upload purge', { ...r }),
        (e) => logger.warn('upload purge failed', { error: String(e) }),
      );
    purgeTimer = setInterval(run, Math.max(60_000, purge.interval));
    purgeTimer.unref();
  }

  const shutdown = async () => {
    if (draining) return;
    draining = true;
    if (purgeTimer) clearInterval(purgeTimer);
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
    clearInterval(idle);
    clearTimeout(deadline);
    await driver.close();
    logger.info('stopped');
  };
  return { server, store, shutdown };
}
