// /v2/<name>/blobs/uploads/[<id>]: upload sessions (POST to start, mount or
// push monolithically; PATCH chunks; PUT to finish; GET status; DELETE cancel).
import { err } from '../../storage/errors';
import type { Ctx, Resource } from '../context';
import { empty, urlFor } from './util';

function uploadPath(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

/** "0-<last byte>" as the spec's Range header reports bytes received (0-0 when none). */
function rangeHeader(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}

function accepted(ctx: Ctx, name: string, id: string, size: number): void {
  empty(ctx, 202);
  ctx.set('Location', urlFor(ctx, uploadPath(name, id)));
  ctx.set('Docker-Upload-UUID', id);
  ctx.set('Range', rangeHeader(size));
}

function created(ctx: Ctx, name: string, digest: string): void {
  empty(ctx, 201);
  ctx.set('Location', urlFor(ctx, `/v2/${name}/blobs/${digest}`));
  ctx.set('Docker-Content-Digest', digest);
}

/** The request body as chunks, or undefined when the request has none. */
function body(ctx: Ctx): AsyncIterable<Buffer> | undefined {
  const len = ctx.get('Content-Length');
  if (len === '0' || (len === '' && !ctx.get('Transfer-Encoding'))) return undefined;
  return ctx.req as AsyncIterable<Buffer>;
}

function declaredLength(ctx: Ctx): number | undefined {
  const len = ctx.get('Content-Length');
  return len === '' ? undefined : Number(len);
}

/** Content-Range "start-end" (inclusive; "bytes " or "bytes=" prefixes tolerated). */
function contentRange(ctx: Ctx): { start: number; end: number } | undefined {
  // Present but empty is a malformed range, not a missing one: the client meant some offset.
  const h = ctx.req.headers['content-range'];
  if (h === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(h.trim());
  if (!m || Number(m[2]) < Number(m[1])) throw err('BLOB_UPLOAD_INVALID', 'malformed Content-Range', { 'Content-Range': h });
  return { start: Number(m[1]), end: Number(m[2]) };
}

function queryString(ctx: Ctx, key: string): string | undefined {
  const v = ctx.query[key];
  return typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
}

export const uploads: Resource = {
  async POST(ctx) {
    const { store } = ctx.deps;
    const name = ctx.state.route.name!;
    if (ctx.state.route.reference) throw err('UNSUPPORTED', 'POST goes to /blobs/uploads/');
    const mount = queryString(ctx, 'mount');
    if (mount !== undefined) {
      ctx.state.log.digest = mount;
      const from = queryString(ctx, 'from');
      const blob = await store.mountBlob(name, mount, from, (repo) => ctx.state.auth.may('repository', repo, 'pull'));
      if (blob) return created(ctx, name, blob.digest);
      // Not mountable: fall back to a fresh upload, as the spec asks.
    }
    const digest = queryString(ctx, 'digest');
    const data = body(ctx);
    if (digest !== undefined && mount === undefined) {
      ctx.state.log.digest = digest;
      const s = await store.uploads.start(name);
      const blob = await store.uploads.complete(name, s.id, digest, data, declaredLength(ctx));
      return created(ctx, name, blob.digest);
    }
    const s = await store.uploads.start(name);
    accepted(ctx, name, s.id, s.size);
  },

  async PATCH(ctx) {
    const { name, reference: id } = ctx.state.route;
    const range = contentRange(ctx);
    const length = declaredLength(ctx);
    if (range && length !== undefined && range.end - range.start + 1 !== length) {
      throw err('SIZE_INVALID', 'Content-Range and Content-Length disagree', { 'Content-Range': ctx.get('Content-Range'), 'Content-Length': length });
    }
    const data = body(ctx) ?? (async function* () {})();
    const s = await ctx.deps.store.uploads.append(name!, id!, data, range?.start, length);
    accepted(ctx, name!, id!, s.size);
  },

  async PUT(ctx) {
    const { name, reference: id } = ctx.state.route;
    const digest = queryString(ctx, 'digest');
    if (!digest) throw err('DIGEST_INVALID', 'the digest query parameter is required');
    ctx.state.log.digest = digest;
    const blob = await ctx.deps.store.uploads.complete(name!, id!, digest, body(ctx), declaredLength(ctx), contentRange(ctx)?.start);
    created(ctx, name!, blob.digest);
  },

  async GET(ctx) {
    const { name, reference: id } = ctx.state.route;
    const s = await ctx.deps.store.uploads.status(name!, id!);
    accepted(ctx, name!, id!, s.size);
    ctx.status = 204;
  },

  async DELETE(ctx) {
    const { name, reference: id } = ctx.state.route;
    await ctx.deps.store.uploads.cancel(name!, id!);
    empty(ctx, 204);
  },
};
