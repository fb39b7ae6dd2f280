// Helpers shared by the route handlers: URLs for Location headers, paging
// parameters and Link headers.
import { err } from '../../storage/errors';
import type { Config } from '../config';
import type { Ctx } from '../context';

/** http.prefix without its trailing slash ("/registry"), or "" when berth is served at /. */
export function externalPrefix(config: Config): string {
  return (config.http.prefix ?? '').replace(/\/+$/, '');
}

/** A URL for Location headers: absolute (from http.host or the request) unless relativeurls. */
export function urlFor(ctx: Ctx, path: string, query?: Record<string, string>): string {
  const qs = query ? `?${new URLSearchParams(query).toString()}` : '';
  const { http } = ctx.deps.config;
  path = externalPrefix(ctx.deps.config) + path;
  if (http.relativeurls) return path + qs;
  const base = http.host ? http.host.replace(/\/$/, '') : `${ctx.protocol}://${ctx.host}`;
  return base + path + qs;
}

export const MAX_PAGE = 10_000;

/** `n` and `last` query parameters of a paginated listing. */
export function pageParams(ctx: Ctx): { n: number; last?: string; limited: boolean } {
  const nRaw = ctx.query.n;
  const lastRaw = ctx.query.last;
  const last = typeof lastRaw === 'string' && lastRaw !== '' ? lastRaw : undefined;
  if (nRaw === undefined || nRaw === '') return { n: MAX_PAGE, last, limited: false };
  if (typeof nRaw !== 'string' || !/^\d+$/.test(nRaw)) {
    throw err('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer', { n: nRaw });
  }
  return { n: Math.min(Number(nRaw), MAX_PAGE), last, limited: true };
}

export function setNextLink(ctx: Ctx, path: string, n: number, last: string | undefined): void {
  if (last === undefined) return;
  const qs = new URLSearchParams({ n: String(n), last }).toString();
  ctx.set('Link', `<${externalPrefix(ctx.deps.config)}${path}?${qs}>; rel="next"`);
}

/** An empty response with this status. (Koa turns a null body into 204, so status goes second.) */
export function empty(ctx: Ctx, status: number): void {
  ctx.body = null;
  ctx.status = status;
}
