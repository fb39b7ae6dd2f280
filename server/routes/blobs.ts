// GET/HEAD/DELETE /v2/<name>/blobs/<digest>: blobs as a repository sees them,
// streamed from the driver (or redirected to it), with single-range support.
import type { BlobInfo } from '../../storage/store';
import { err } from '../../storage/errors';
import type { Ctx, Resource } from '../context';
import { empty } from './util';

/** Parse a single-range "bytes=a-b" / "bytes=a-" / "bytes=-n" header against size; undefined = whole. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // multi-range or malformed: serve it whole
  let start: number;
  let end: number; // exclusive
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw err('RANGE_INVALID', 'requested range not satisfiable', { size });
    start = Math.max(0, size - suffix);
    end = size;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size : Math.min(Number(m[2]) + 1, size);
    if (m[2] !== '' && Number(m[2]) < start) return undefined;
  }
  if (start >= size) throw err('RANGE_INVALID', 'requested range not satisfiable', { size });
  return { start, end };
}

async function serve(ctx: Ctx, withBody: boolean): Promise<void> {
  const { store } = ctx.deps;
  const name = ctx.state.route.name!;
  const digest = ctx.state.route.reference!;
  ctx.state.log.digest = digest;
  const info: BlobInfo = await store.statBlob(name, digest);
  const redirect = await store.blobRedirect(info, withBody ? 'GET' : 'HEAD');
  if (redirect) {
    ctx.status = 307;
    ctx.set('Location', redirect);
    ctx.set('Docker-Content-Digest', info.digest);
    return;
  }
  ctx.set('Docker-Content-Digest', info.digest);
  ctx.set('ETag', `"${info.digest}"`);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Cache-Control', 'max-age=31536000');
  ctx.type = 'application/octet-stream';
  if (ctx.get('If-None-Match') === `"${info.digest}"`) {
    ctx.status = 304;
    return;
  }
  let range;
  try {
    range = parseRange(ctx.get('Range'), info.size);
  } catch (e) {
    ctx.set('Content-Range', `bytes */${info.size}`);
    throw e;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? info.size;
  if (range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${start}-${end - 1}/${info.size}`);
  } else {
    ctx.status = 200;
  }
  if (withBody) ctx.body = await store.readBlob(info, start, end);
  ctx.length = end - start;
}

export const blobs: Resource = {
  GET: (ctx) => serve(ctx, true),
  HEAD: (ctx) => serve(ctx, false),
  async DELETE(ctx) {
    ctx.state.log.digest = ctx.state.route.reference;
    await ctx.deps.store.deleteBlob(ctx.state.route.name!, ctx.state.route.reference!);
    empty(ctx, 202);
  },
};
