// The admin API (/berth/v1/...): what the web UI and scripts read and delete
// with, every answer filtered by the caller's rights. Repository names hold
// '/', so sub-resources are segments starting with '_', which no name
// component can. See the README's "Admin API" for the reference.
import type Koa from 'koa';
import type { State } from '../server/context';
import { RegistryError } from '../storage/errors';
import type { AdminState } from './auth';
import type { AdminCtx, AdminDeps } from './context';
import { imagesContaining, getImage } from './images';
import { deleteImage, deleteRepository, deleteTag, getRepository, listRepositories, previewDelete } from './repositories';
import { listTags } from './tags';
import { VisibleTotals } from './totals';
import { getUsage } from './usage';

export type { AdminDeps, UpstreamOf } from './context';

type Handler = (ctx: AdminCtx) => Promise<void>;

/** A path segment as sent (clients may percent-encode a digest's ':'). */
function segment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new RegistryError('NAME_INVALID', 'malformed path segment', { segment: s });
  }
}

const REPO = /^\/berth\/v1\/repositories\/(.+?)(?:\/_(tags|manifests|delete)(?:\/([^/]+))?)?$/;
const BLOB = /^\/berth\/v1\/blobs\/([^/]+)\/images$/;

/** The handlers for a path, by method; undefined when the path is not the admin API's. */
function route(path: string, deps: AdminDeps): Partial<Record<string, Handler>> | undefined {
  if (path === '/berth/v1/repositories') return { GET: listRepositories };
  if (path === '/berth/v1/usage') return deps.config.berth.usage.enabled ? { GET: getUsage } : undefined;
  const b = BLOB.exec(path);
  if (b) return { GET: (ctx) => imagesContaining(ctx, segment(b[1])) };
  const m = REPO.exec(path);
  if (!m) return undefined;
  const [, name, sub, ref] = m;
  if (!sub) return { GET: (ctx) => getRepository(ctx, name), DELETE: (ctx) => deleteRepository(ctx, name) };
  if (sub === 'tags' && !ref) return { GET: (ctx) => listTags(ctx, name) };
  if (sub === 'tags') return { DELETE: (ctx) => deleteTag(ctx, name, segment(ref)) };
  if (sub === 'manifests' && ref) return { GET: (ctx) => getImage(ctx, name, segment(ref)), DELETE: (ctx) => deleteImage(ctx, name, segment(ref)) };
  if (sub === 'delete' && !ref) return { GET: (ctx) => previewDelete(ctx, name) };
  return undefined;
}

/** The admin API's data endpoints as one middleware, behind admin/front.ts (which sets ctx.state.auth). */
export function adminApi(deps: AdminDeps): Koa.Middleware<State & AdminState> {
  const admin = { ...deps, totals: new VisibleTotals() };
  return async (ctx, next) => {
    if (!ctx.path.startsWith('/berth/v1/')) return next();
    const handlers = route(ctx.path, deps);
    if (!handlers) return next();
    const method = ctx.method === 'HEAD' ? 'GET' : ctx.method;
    const handler = handlers[method];
    if (!handler) {
      ctx.set('Allow', Object.keys(handlers).join(', '));
      throw new RegistryError('UNSUPPORTED', `${ctx.method} is not supported here`, undefined, 405);
    }
    await handler(Object.assign(ctx, { admin }));
  };
}
