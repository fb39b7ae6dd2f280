// Blob bodies read from local files leave through sendfile(2): the kernel
// copies page cache to socket, where streaming copies every byte into JS and
// out again (distribution gets the same from Go's io.Copy). It needs the addon
// from server/native; without it, over TLS, or past MAX_TRANSFERS at once,
// bodies stream through Koa as before.
import type http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import type Koa from 'koa';
import { localFile, type LocalFileRange } from '../storage/driver';
import { countBytesOut } from './observe';

export interface SendfileAddon {
  send(socketFd: number, fileFd: number, offset: number, length: number, idleMs: number, done: (errno: number, sent: number) => void): object;
  cancel(handle: object): void;
}

function load(): SendfileAddon | undefined {
  try {
    return require(path.join(__dirname, 'native', 'sendfile.node')) as SendfileAddon;
  } catch {
    return undefined;
  }
}

/** The built addon, or undefined (no compiler or headers at build time). */
export const addon = load();

/** Each transfer has a thread of its own (it blocks on the socket, not on libuv's pool). */
const MAX_TRANSFERS = 256;
const NOTHING = Buffer.alloc(0);

function socketFd(socket: net.Socket): number | undefined {
  if (socket instanceof tls.TLSSocket) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * Outermost middleware: once everything inside has set status and headers,
 * a GET whose body is a local file goes out with sendfile instead of Koa's pipe.
 */
export function sendfile(enabled: boolean): Koa.Middleware {
  let active = 0;
  return async (ctx, next) => {
    await next();
    const file = localFile(ctx.body);
    if (!addon || !enabled || !file || ctx.method !== 'GET' || active >= MAX_TRANSFERS || !ctx.writable) return;
    // A pipelined request's response waits for the one before it: no socket yet, so Koa streams it.
    const fd = ctx.res.socket === ctx.req.socket ? socketFd(ctx.req.socket) : undefined;
    if (fd === undefined) return;
    ctx.respond = false;
    active++;
    try {
      await transfer(addon, ctx.res, fd, file);
    } finally {
      active--;
      (ctx.body as Readable).destroy(); // closes the file; the addon used its own descriptor
    }
  };
}

async function transfer(addon: SendfileAddon, res: http.ServerResponse, fd: number, file: LocalFileRange): Promise<void> {
  const socket = res.socket!;
  res.flushHeaders();
  // The kernel appends to the socket directly: Node's queue (the headers) must be empty first.
  await new Promise<void>((resolve) => socket.write(NOTHING, () => resolve()));
  if (socket.destroyed) return;
  // Node's idle timer sees no writes during the transfer: the addon applies the same limit.
  const idleMs = socket.timeout ?? 0;
  socket.setTimeout(0);
  const { errno, sent } = await new Promise<{ errno: number; sent: number }>((resolve) => {
    let handle: object;
    const cancel = () => addon.cancel(handle);
    try {
      handle = addon.send(fd, file.fd, file.start, file.end - file.start, idleMs, (errno, sent) => {
        res.off('close', cancel);
        resolve({ errno, sent });
      });
    } catch {
      resolve({ errno: -1, sent: 0 }); // out of descriptors: the headers are gone, so is this response
      return;
    }
    res.once('close', cancel);
  });
  countBytesOut(res, sent);
  if (errno !== 0) {
    socket.destroy();
    return;
  }
  socket.setTimeout(idleMs);
  res.end();
}
