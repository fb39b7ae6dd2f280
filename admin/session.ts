// GET/POST/DELETE /berth/v1/session: who the UI is signed in as, sign-in with
// a user's password or a robot's secret, and sign-out. Runs after adminAuth
// (admin/auth.ts), which has read the cookie.
import type Koa from 'koa';
import { readSmallBody } from '../auth/body';
import { err } from '../storage/errors';
import { type AdminState, ADMIN_PREFIX, clearSessionCookie, csrfFor, setSessionCookie } from './auth';
import type { Identity } from './identity';

export const SESSION_PATH = `${ADMIN_PREFIX}/session`;
const MAX_BODY = 8 * 1024;
const MAX_FIELD = 1024;

export interface SessionOptions {
  deletesEnabled: boolean;
  /** http.host: what `docker pull` should name; else the request's Host. */
  publicHost?: string;
}

export interface SessionInfo {
  user: string | null;
  auth: Identity['kind'];
  deletesEnabled: boolean;
  host: string;
  csrf?: string;
}

async function readCredentials(ctx: Koa.Context): Promise<{ username: string; password: string }> {
  if (!ctx.is('application/json')) throw err('UNSUPPORTED', 'send the credentials as application/json', undefined, 415);
  const bytes = await readSmallBody(ctx, MAX_BODY);
  if (!bytes) throw err('SIZE_INVALID', 'request body too large', undefined, 413);
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw err('UNSUPPORTED', 'the body is not JSON', undefined, 400);
  }
  const { username, password } = (body ?? {}) as Record<string, unknown>;
  if (typeof username !== 'string' || typeof password !== 'string' || !username || username.length > MAX_FIELD || password.length > MAX_FIELD) {
    throw err('UNSUPPORTED', 'expected {"username": "...", "password": "..."}', undefined, 400);
  }
  return { username, password };
}

export function sessionRoutes(identity: Identity, opts: SessionOptions): Koa.Middleware {
  const info = (ctx: Koa.Context, session: AdminState['session']): SessionInfo => ({
    user: session?.user ?? null,
    auth: identity.kind,
    deletesEnabled: opts.deletesEnabled,
    host: opts.publicHost ?? ctx.host,
    ...(session && { csrf: csrfFor(session.value) }),
  });
  return async (ctx, next) => {
    if (ctx.path !== SESSION_PATH) return next();
    const state = ctx.state as AdminState;
    switch (ctx.method) {
      case 'GET':
      case 'HEAD':
        ctx.body = info(ctx, state.session);
        return;
      case 'POST': {
        const { username, password } = await readCredentials(ctx);
        const cred = await identity.login(ctx, username, password);
        if (!cred) throw err('UNAUTHORIZED', 'invalid username or password');
        setSessionCookie(ctx, cred);
        ctx.body = info(ctx, { user: username, value: cred.value });
        return;
      }
      case 'DELETE':
        clearSessionCookie(ctx);
        ctx.status = 204;
        return;
      default:
        ctx.set('Allow', 'GET, HEAD, POST, DELETE');
        throw err('UNSUPPORTED', `${ctx.method} is not supported here`, undefined, 405);
    }
  };
}
