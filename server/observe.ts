// The outermost middleware: a request id for every request (echoed in
// X-Request-Id and on the log lines about it), then, once the
// response has gone out in full or the client went away, the access log line,
// the request metrics and the webhook event.
import crypto from 'node:crypto';
import http from 'node:http';
import type Koa from 'koa';
import type { Ctx, State } from './context';
import type { Logger } from './log';
import { routeTemplate, type Metrics } from './metrics';
import type { Notifier } from './notifications';

export interface ObserveOptions {
  logger: Logger;
  accessLog: boolean;
  metrics?: Metrics;
  notifier?: Notifier;
  /** Paths outside /v2 (health, metrics): their own metric label, access-logged at debug level only. */
  opsPaths: string[];
  /** True once the server drains: responses then close their connection. */
  draining: () => boolean;
}

// Ids from clients are echoed in headers and logs: only plain tokens.
const CLIENT_ID = /^[\w.:-]{1,128}$/;

interface Bytes {
  in: number;
  out: number;
}

/**
 * Each request's and response's byte counts (the same object for both), as a
 * property of theirs: a WeakMap's table, resized as requests come and go,
 * outlived young collections and piled up in the old generation.
 */
const kBytes = Symbol('berth.bytes');
type Counted = { [kBytes]?: Bytes };
const counter = (o: object) => (o as Counted)[kBytes]!;

/** Body bytes a response sent past res.write (sendfile). */
export function countBytesOut(res: http.ServerResponse, bytes: number): void {
  const n = (res as Counted)[kBytes];
  if (n) n.out += bytes;
}

const sizeOf = (chunk: unknown, enc: unknown) =>
  typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof enc === 'string' ? (enc as BufferEncoding) : 'utf8') : chunk instanceof Uint8Array ? chunk.length : 0;

// One set of functions for every request (no closures per request: this runs
// on every manifest GET). Explicit undefined arguments mean what omitted ones do.
const { write, end } = http.ServerResponse.prototype;
const iterate = http.IncomingMessage.prototype[Symbol.asyncIterator];

function countedWrite(this: http.ServerResponse, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  counter(this).out += sizeOf(chunk, encoding);
  return (write as (...a: unknown[]) => boolean).call(this, chunk, encoding, cb);
}

function countedEnd(this: http.ServerResponse, chunk?: unknown, encoding?: unknown, cb?: unknown): http.ServerResponse {
  if (typeof chunk !== 'function') counter(this).out += sizeOf(chunk, encoding);
  return (end as (...a: unknown[]) => http.ServerResponse).call(this, chunk, encoding, cb);
}

async function* countedIterate(this: http.IncomingMessage): AsyncGenerator<Buffer> {
  const n = counter(this);
  for await (const chunk of iterate.call(this)) {
    n.in += (chunk as Buffer).length;
    yield chunk as Buffer;
  }
}

/**
 * Body bytes actually received and sent. Handlers read the request with
 * for-await and Koa streams responses through res.write/end, so replacing those
 * on this request's own objects sees every byte without buffering or a
 * 'data' listener (which would steal chunks from the handler).
 */
function countBytes(req: http.IncomingMessage, res: http.ServerResponse): Bytes {
  const n = { in: 0, out: 0 };
  (req as Counted)[kBytes] = n;
  (res as Counted)[kBytes] = n;
  req[Symbol.asyncIterator] = countedIterate;
  res.write = countedWrite as typeof res.write;
  res.end = countedEnd as typeof res.end;
  return n;
}

export function observe(opts: ObserveOptions): Koa.Middleware<State> {
  const { logger, metrics, notifier } = opts;
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const given = ctx.get('X-Request-Id');
    const requestId = CLIENT_ID.test(given) ? given : crypto.randomUUID();
    ctx.state.requestId = requestId;
    const { remoteAddress, remotePort } = ctx.req.socket;
    ctx.state.peer = { address: remoteAddress, port: remotePort };
    ctx.set('X-Request-Id', requestId);
    const bytes = countBytes(ctx.req, ctx.res);
    const finish = () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const completed = ctx.res.writableFinished;
      const route = ctx.state.route;
      const template = routeTemplate(route?.kind, route?.reference, ctx.path, opts.opsPaths);
      metrics?.request({ method: ctx.method, route: template, status: ctx.status, seconds, bytesIn: bytes.in, bytesOut: bytes.out });
      if (completed && ctx.status < 400) notifier?.requestDone(ctx as Ctx, bytes.in);
      if (!opts.accessLog) return;
      const fields = {
        requestId,
        method: ctx.method,
        // ctx.path has no query string: tokens and signatures there stay out of logs.
        path: ctx.path,
        route: template,
        status: ctx.status,
        repository: ctx.state.log?.repository,
        digest: ctx.state.log?.digest,
        bytesIn: bytes.in,
        bytesOut: bytes.out,
        ms: Math.round(seconds * 1e6) / 1e3,
        remoteAddr: remoteAddress,
        ...(completed ? {} : { aborted: true }),
      };
      if (opts.opsPaths.includes(ctx.path)) logger.debug('request', fields);
      else logger.info('request', fields);
    };
    ctx.res.once('close', () => {
      // Runs outside the request's promise chain: a throw here would take the process down.
      try {
        finish();
      } catch (e) {
        logger.error('request bookkeeping failed', { requestId, error: (e as Error)?.stack ?? String(e) });
      }
    });
    await next();
    if (opts.draining()) ctx.set('Connection', 'close');
  };
}
