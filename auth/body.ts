// A small request body (a form, credentials) read whole, up to a limit.
import type Koa from 'koa';

/**
 * The body, or undefined once it passes `max` bytes: the rest is not read,
 * and the connection is marked to close. Read with for-await, as the
 * registry's handlers read: the access log counts bytes received that way.
 */
export async function readSmallBody(ctx: Koa.Context, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of ctx.req) {
    size += (c as Buffer).length;
    if (size > max) {
      ctx.set('Connection', 'close');
      return undefined;
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}
