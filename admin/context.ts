// What the admin API's handlers share: the store, the caller's rights, paging.
import type Koa from 'koa';
import type { State } from '../server/context';
import type { Config } from '../server/config';
import { err } from '../storage/errors';
import { isValidName } from '../storage/names';
import type { ContentStore } from '../storage/store';
import type { AdminState } from './auth';
import type { VisibleTotals } from './totals';

/** Where a repository's content comes from when it is not hosted here (the pull-through cache). */
export type UpstreamOf = (repo: string) => { prefix: string; remoteurl: string } | undefined;

export interface AdminDeps {
  store: ContentStore;
  config: Config;
  upstreamOf?: UpstreamOf;
}

/** What the handlers get: the deps, the admin API's own state, and what adminAuth learnt of the caller. */
export type AdminCtx = Koa.ParameterizedContext<State & AdminState> & { admin: AdminDeps & { totals: VisibleTotals } };

export const canPull = (ctx: AdminCtx, repo: string) => ctx.state.auth.may('repository', repo, 'pull');

/**
 * The repository named in the path, if the caller may see it. One that does
 * not exist and one the caller may not pull answer alike: names do not leak.
 */
export function visibleRepository(ctx: AdminCtx, name: string): string {
  if (!isValidName(name) || !canPull(ctx, name)) throw err('NAME_UNKNOWN', 'repository name not known to registry', { name });
  return name;
}

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 1000;

export function paging(ctx: AdminCtx): { limit: number; cursor?: string } {
  const raw = ctx.query.limit;
  let limit = DEFAULT_LIMIT;
  if (raw !== undefined) {
    if (typeof raw !== 'string' || !/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_LIMIT) {
      throw err('PAGINATION_NUMBER_INVALID', `limit must be an integer from 1 to ${MAX_LIMIT}`, { limit: raw });
    }
    limit = Number(raw);
  }
  const c = ctx.query.cursor;
  return { limit, cursor: typeof c === 'string' && c !== '' ? c : undefined };
}

export const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : null);
