// The admin API's auth: for every /berth/v1 request, decide who is calling
// (the UI's session cookie, else an Authorization header, else anonymous) and
// set ctx.state.auth for the data endpoints. State-changing requests must come
// from this origin and, with a session, carry its CSRF token.
import crypto from 'node:crypto';
import type Koa from 'koa';
import { err } from '../storage/errors';
import type { Caller, Credential, Identity } from './identity';

export const ADMIN_PREFIX = '/berth/v1';
export const SESSION_COOKIE = 'berth_session';
export const CSRF_HEADER = 'X-Berth-CSRF';
/** The cookie goes to the admin API only, never to /v2 or the static assets. */
const COOKIE_PATH = '/berth';

/** What the session endpoints and the handlers learn from this middleware. */
export interface AdminState {
  /** The signed-in user of a valid session cookie, and the cookie now in force. */
  session?: { user: string; value: string };
  /** The credential the caller's rights come from (the session cookie or Authorization header; '' for anonymous). */
  credential: string;
}

/**
 * The CSRF token of a session: a hash of the cookie, which a page of another origin can
 * neither read (HttpOnly) nor ask for (the session endpoint is same-origin only). No
 * server-side state, so any replica checks it.
 */
export function csrfFor(cookie: string): string {
  return crypto.createHash('sha256').update(`berth-csrf\0${cookie}`).digest('base64url');
}

export function setSessionCookie(ctx: Koa.Context, c: Credential): void {
  const maxAge = Math.max(1, Math.floor((c.expiresAt - Date.now()) / 1000));
  ctx.append('Set-Cookie', cookie(ctx, `${SESSION_COOKIE}=${c.value}`, `Max-Age=${maxAge}`));
}

export function clearSessionCookie(ctx: Koa.Context): void {
  ctx.append('Set-Cookie', cookie(ctx, `${SESSION_COOKIE}=`, 'Max-Age=0'));
}

function cookie(ctx: Koa.Context, ...parts: string[]): string {
  return [...parts, `Path=${COOKIE_PATH}`, 'HttpOnly', 'SameSite=Strict', ...(ctx.secure ? ['Secure'] : [])].join('; ');
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The browser's own word on where a request comes from (fetch metadata, Origin); absent for non-browser clients. */
function sameOrigin(ctx: Koa.Context, publicHost: string | undefined): boolean {
  const site = ctx.get('sec-fetch-site');
  if (site && site !== 'same-origin' && site !== 'none') return false;
  const origin = ctx.get('origin');
  if (!origin) return true;
  try {
    const host = new URL(origin).host;
    return host === ctx.host || host === publicHost;
  } catch {
    return false; // "null" (sandboxed frames, some redirects) and garbage
  }
}

function validCsrf(ctx: Koa.Context, cookie: string): boolean {
  const got = Buffer.from(ctx.get(CSRF_HEADER));
  const want = Buffer.from(csrfFor(cookie));
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

export interface AdminAuthOptions {
  /** http.host: the public origin, also accepted as a request's Origin behind a proxy. */
  publicHost?: string;
  /** The session endpoint's path, where an expired cookie is not an error. */
  sessionPath: string;
}

export function adminAuth(identity: Identity, opts: AdminAuthOptions): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.path !== ADMIN_PREFIX && !ctx.path.startsWith(`${ADMIN_PREFIX}/`)) return next();
    // Answers name repositories the caller may see: no shared cache may keep them.
    ctx.set('Cache-Control', 'no-store');
    const unsafe = !SAFE.has(ctx.method);
    if (unsafe && !sameOrigin(ctx, opts.publicHost)) throw err('DENIED', 'cross-origin requests are refused');
    const state = ctx.state as AdminState;
    const signIn = ctx.path === opts.sessionPath && ctx.method === 'POST';
    let caller: Caller | undefined;
    state.credential = '';
    const value = ctx.cookies.get(SESSION_COOKIE);
    if (value) {
      const s = identity.resume(value);
      if (!s) {
        clearSessionCookie(ctx);
        // The UI asks the session endpoint who it is; elsewhere say why, rather than answer as anonymous.
        if (ctx.path !== opts.sessionPath) throw err('UNAUTHORIZED', 'the session has expired; sign in again');
      } else if (!signIn) {
        if (unsafe && !validCsrf(ctx, value)) throw err('DENIED', `missing or wrong ${CSRF_HEADER} header`);
        caller = s;
        state.credential = value;
        state.session = { user: s.user!, value };
        // Sliding renewal: an active tab stays signed in; an idle one ends within a lifetime.
        if (s.expiresAt - Date.now() < identity.lifetimeMs / 2) {
          const fresh = identity.renew(s.user!);
          if (fresh) {
            setSessionCookie(ctx, fresh);
            state.session.value = fresh.value;
          }
        }
      }
    }
    if (!caller && ctx.get('authorization') && !signIn) {
      const auth = await identity.fromHeader(ctx);
      if (!auth) {
        const challenge = identity.challenge(ctx);
        if (challenge) ctx.set('WWW-Authenticate', challenge);
        throw err('UNAUTHORIZED', 'invalid credentials');
      }
      caller = { auth, user: auth.subject ?? null };
      state.credential = ctx.get('authorization');
    }
    ctx.state.auth = caller?.auth ?? identity.anonymous;
    await next();
  };
}
