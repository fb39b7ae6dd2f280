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
  /**
   * The client's address, read when the request arrives: by its end the request may have
   * lost its socket (req.socket is null once a stream pipeline or for-await destroys it).
   */
  peer: { address?: string; port?: number };
}

export interface Deps {
  store: ContentStore;
  config: Config;
}

export type Ctx = Koa.ParameterizedContext<State> & { deps: Deps };
export type Handler = (ctx: Ctx) => Promise<void>;

/**
 * Content the registry serves without owning it yet: the pull-through cache
 * (proxy/), which serve.ts wires in; the core never imports it. It runs for
 * every /v2 request after the access checks and before the handler, and may
 * answer the request itself (a blob streamed while it is cached, a refused
 * push), point ctx.state.route at the repository that holds the content (a
 * mirror request without prefix), or just call next().
 */
export type Source = (ctx: Ctx, next: () => Promise<void>) => Promise<void>;
/** A resource's handlers by HTTP method. */
export type Resource = Partial<Record<'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', Handler>>;
