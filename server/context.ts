// What every handler can reach: the store, the config, the matched route and
// the caller's rights. Set up by server/app.ts.
import type Koa from 'koa';
import type { RequestAuth } from '../auth/types';
import type { ContentStore } from '../storage/store';
import type { Config } from './config';
import type { Route } from './routes/match';

/** The caller's rights, set by the auth middleware (auth/); allow-all when no auth is configured. */
export type { RequestAuth };

export const allowAll: RequestAuth = { may: () => true };

export interface State {
  route: Route;
  auth: RequestAuth;
  requestId: string;
  /** What the access log records about the request. */
  log: { repository?: string; digest?: string };
}

export interface Deps {
  store: ContentStore;
  config: Config;
}

export type Ctx = Koa.ParameterizedContext<State> & { deps: Deps };
export type Handler = (ctx: Ctx) => Promise<void>;
/** A resource's handlers by HTTP method. */
export type Resource = Partial<Record<'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', Handler>>;
