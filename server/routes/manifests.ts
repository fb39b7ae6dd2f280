// /v2/<name>/manifests/<reference>: manifests by tag or digest. Stored bytes
// are served unchanged; PUT bodies are read up to the size limit only.
import { err } from '../../storage/errors';
import { MAX_MANIFEST_SIZE } from '../../storage/manifest';
import type { ManifestContent } from '../../storage/store';
import type { Ctx, Resource } from '../context';
import { empty, urlFor } from './util';

/** Does the Accept header admit mediaType? No header, or a wildcard, admits everything. */
export function accepts(accept: string, mediaType: string): boolean {
  if (!accept.trim()) return true;
  return accept
    .split(',')
    .map((a) => a.split(';')[0].trim().toLowerCase())
    .some((a) => a === '*/*' || a === 'application/*' || a === mediaType || a === '');
}

/** How much of an oversized manifest body is read and dropped before the 413, beyond the limit. */
const DRAIN_LIMIT = 4 * MAX_MANIFEST_SIZE;

/**
 * The body, up to `limit` bytes. A larger one is refused once the client has
 * sent it (read and dropped, up to DRAIN_LIMIT more): answering while it still
 * sends closes the connection under it, and it sees a reset, not the answer.
 * Past DRAIN_LIMIT the answer comes at once and closes the connection.
 */
async function readBody(ctx: Ctx, limit: number): Promise<Buffer> {
  const declared = Number(ctx.get('Content-Length') || 0);
  const tooLarge = () => err('SIZE_INVALID', `manifest exceeds ${limit} bytes`, declared ? { size: declared } : undefined, 413);
  if (declared > limit + DRAIN_LIMIT) {
    ctx.set('Connection', 'close');
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let n = 0;
  // Stepped by hand: leaving a for-await early would destroy the request, and the answer with it.
  const body = (ctx.req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  for (let next = await body.next(); !next.done; next = await body.next()) {
    n += next.value.length;
    if (n <= limit) chunks.push(next.value);
    else if (n > limit + DRAIN_LIMIT) break;
  }
  if (n <= limit) return Buffer.concat(chunks);
  if (!ctx.req.complete) ctx.set('Connection', 'close');
  throw tooLarge();
}

async function serve(ctx: Ctx, withBody: boolean): Promise<void> {
  const { name, reference } = ctx.state.route;
  sendManifest(ctx, await ctx.deps.store.getManifest(name!, reference!), withBody);
}

/** Answer with a manifest (also the pull-through cache's, fetched and not stored yet): Accept, conditional GET, headers, body. */
export function sendManifest(ctx: Ctx, m: ManifestContent, withBody: boolean): void {
  ctx.state.log.digest = m.digest;
  const accept = ctx.get('Accept');
  if (!accepts(accept, m.mediaType)) {
    throw err('MANIFEST_UNKNOWN', `manifest is a ${m.mediaType}, which the Accept header does not admit`, { mediaType: m.mediaType });
  }
  ctx.status = 200;
  ctx.set('Docker-Content-Digest', m.digest);
  ctx.set('ETag', `"${m.digest}"`);
  ctx.type = m.mediaType;
  if (ctx.get('If-None-Match') === `"${m.digest}"`) {
    ctx.status = 304;
    return;
  }
  if (withBody) ctx.body = m.bytes;
  ctx.length = m.bytes.length;
}

export const manifests: Resource = {
  GET: (ctx) => serve(ctx, true),
  HEAD: (ctx) => serve(ctx, false),

  async PUT(ctx) {
    const { name, reference } = ctx.state.route;
    const bytes = await readBody(ctx, MAX_MANIFEST_SIZE);
    const r = await ctx.deps.store.putManifest(name!, reference!, bytes, ctx.get('Content-Type') || undefined, { by: ctx.state.auth.subject });
    ctx.state.log.digest = r.digest;
    empty(ctx, 201);
    ctx.set('Location', urlFor(ctx, `/v2/${name}/manifests/${r.digest}`));
    ctx.set('Docker-Content-Digest', r.digest);
    if (r.subject) ctx.set('OCI-Subject', r.subject);
  },

  async DELETE(ctx) {
    const { name, reference } = ctx.state.route;
    await ctx.deps.store.deleteManifest(name!, reference!);
    empty(ctx, 202);
  },
};
