// Who a caller of the admin API is, for each auth mode: what a session cookie,
// an Authorization header or nobody at all may do, and how the UI signs in.
// The checks are the registry's own (auth/): the same verifier, policy,
// users and htpasswd file, so the UI can never see more than /v2 would give.
import crypto from 'node:crypto';
import type Koa from 'koa';
import { grants } from '../auth/access';
import { parseAuthorization, quoteParam } from '../auth/credentials';
import { TokenError, type AuthParts, type RequestAuth, type TokenVerifier } from '../auth/index';
import type { AuthConfig, TokenAuthConfig } from '../auth/config';
import { FailureThrottle } from '../auth/throttle';
import { err } from '../storage/errors';

export type AuthKind = 'none' | 'token' | 'htpasswd';

export interface Caller {
  auth: RequestAuth;
  user: string | null;
}

/** What the session cookie holds, and until when (ms since the epoch). */
export interface Credential {
  value: string;
  expiresAt: number;
}

export interface Identity {
  kind: AuthKind;
  /** How long a session lasts without renewal, in ms. */
  lifetimeMs: number;
  /** A caller without credentials. */
  anonymous: RequestAuth;
  /** Rights from an Authorization header, or undefined when it is not accepted. */
  fromHeader(ctx: Koa.Context): Promise<RequestAuth | undefined>;
  /** The WWW-Authenticate value for a refused Authorization header. */
  challenge(ctx: Koa.Context): string;
  /** Checks the password (throttled); undefined for bad credentials. */
  login(ctx: Koa.Context, user: string, password: string): Promise<Credential | undefined>;
  /** The caller behind a session cookie, while it is valid. */
  resume(value: string): (Caller & Credential) | undefined;
  /** A fresh credential for a session about to expire; undefined where sessions cannot be renewed. */
  renew(user: string): Credential | undefined;
}

const nobody: RequestAuth = { may: () => false };
const everybody: RequestAuth = { may: () => true };

/** Only berth's own sessions are renewed in place; 15 min suits an idle UI tab. */
const HTPASSWD_SESSION_MS = 15 * 60_000;

export function createIdentity(config: { auth?: AuthConfig }, parts: AuthParts, tokenExpirationMs = 300_000): Identity {
  if (parts.verifier && config.auth?.token) {
    return parts.local && parts.authorizer
      ? localTokens(parts as Required<Pick<AuthParts, 'verifier' | 'local' | 'authorizer'>>, config.auth.token, tokenExpirationMs)
      : remoteTokens(parts.verifier, config.auth.token);
  }
  if (parts.htpasswd) return htpasswd(parts.htpasswd, config.auth?.htpasswd?.realm ?? 'berth');
  return {
    kind: 'none',
    lifetimeMs: 0,
    anonymous: everybody,
    fromHeader: async () => everybody,
    challenge: () => '',
    login: async () => {
      throw err('UNSUPPORTED', 'no auth is configured: everyone may do everything, there is nothing to sign in to');
    },
    resume: () => undefined,
    renew: () => undefined,
  };
}

function bearerChallenge(verifier: TokenVerifier, cfg: TokenAuthConfig, ctx: Koa.Context): string {
  return `Bearer realm=${quoteParam(verifier.realm(ctx))},service=${quoteParam(cfg.service)}`;
}

/** The rights of a verified token: its own grants, plus the policy's when it is in this process. */
function tokenCaller(verifier: TokenVerifier, token: string, authorizer?: AuthParts['authorizer']): (Caller & Credential) | undefined {
  try {
    const t = verifier.verify(token);
    const user = t.subject ?? null;
    const auth: RequestAuth = {
      subject: t.subject,
      may: (type, name, action) => grants(t.access, type, name, action) || (authorizer?.(t.subject, type, name, action) ?? false),
    };
    return { auth, user, value: token, expiresAt: t.exp * 1000 };
  } catch (e) {
    if (e instanceof TokenError) return undefined;
    throw e;
  }
}

/** The token service runs in this process: sign in by its users file, rights by its policy. */
function localTokens(parts: Required<Pick<AuthParts, 'verifier' | 'local' | 'authorizer'>>, cfg: TokenAuthConfig, lifetimeMs: number): Identity {
  const { verifier, local, authorizer } = parts;
  const credential = (i: { token: string; expiresIn: number } | undefined) => i && { value: i.token, expiresAt: Date.now() + i.expiresIn * 1000 };
  return {
    kind: 'token',
    lifetimeMs,
    anonymous: { may: (type, name, action) => authorizer(undefined, type, name, action) },
    async fromHeader(ctx) {
      const cred = parseAuthorization(ctx.get('authorization'));
      return cred.kind === 'bearer' ? tokenCaller(verifier, cred.token, authorizer)?.auth : undefined;
    },
    challenge: (ctx) => bearerChallenge(verifier, cfg, ctx),
    login: async (ctx, user, password) => credential(await local.login({ ip: ctx.ip, requestId: ctx.state.requestId }, user, password, cfg.service)),
    resume: (value) => {
      const c = tokenCaller(verifier, value, authorizer);
      // Anonymous tokens are for /v2 clients; a session is someone's.
      return c?.user ? c : undefined;
    },
    renew: (user) => credential(local.reissue(user, cfg.service)),
  };
}

/**
 * A token service in another process: the UI signs in there, server-side, with Basic
 * credentials, and the session has what that token grants (the catalog, as /v2/_catalog
 * would with such a token); there is no policy here to ask for more, and no renewal.
 */
function remoteTokens(verifier: TokenVerifier, cfg: TokenAuthConfig): Identity {
  const throttle = new FailureThrottle();
  return {
    kind: 'token',
    lifetimeMs: 0,
    anonymous: nobody,
    async fromHeader(ctx) {
      const cred = parseAuthorization(ctx.get('authorization'));
      return cred.kind === 'bearer' ? tokenCaller(verifier, cred.token)?.auth : undefined;
    },
    challenge: (ctx) => bearerChallenge(verifier, cfg, ctx),
    async login(ctx, user, password) {
      await throttle.wait(user, ctx.ip);
      const url = new URL(verifier.realm(ctx));
      url.searchParams.set('service', cfg.service);
      url.searchParams.set('scope', 'registry:catalog:*');
      let res: Response;
      try {
        res = await fetch(url, {
          headers: { Authorization: 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64') },
          signal: AbortSignal.timeout(10_000),
          redirect: 'error',
        });
      } catch (e) {
        throw err('UNAVAILABLE', 'the token service did not answer', { reason: (e as Error).message });
      }
      const body = (await res.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown };
      if (res.status === 401) {
        throttle.failed(user, ctx.ip);
        return undefined;
      }
      const token = typeof body.token === 'string' ? body.token : body.access_token;
      const caller = res.ok && typeof token === 'string' ? tokenCaller(verifier, token) : undefined;
      if (!caller?.user) throw err('UNAVAILABLE', 'the token service gave no usable token', { status: res.status });
      throttle.succeeded(user);
      return { value: caller.value, expiresAt: caller.expiresAt };
    },
    resume: (value) => {
      const c = tokenCaller(verifier, value);
      return c?.user ? c : undefined;
    },
    renew: () => undefined,
  };
}

/**
 * htpasswd: a session is `user.expiry.mac`, an HMAC keyed by the user's own bcrypt entry, so
 * every replica reading the same file accepts it and a changed password or a removed user
 * ends it at once. Any valid user may do everything, as on /v2.
 */
function htpasswd(users: NonNullable<AuthParts['htpasswd']>, realm: string): Identity {
  const mac = (hash: string, user: string, exp: number) =>
    crypto.createHmac('sha256', hash).update(`berth-ui-session\0${user}\0${exp}`).digest('base64url');
  const sign = (user: string): Credential | undefined => {
    const hash = users.hashOf(user);
    if (!hash) return undefined;
    const exp = Math.floor((Date.now() + HTPASSWD_SESSION_MS) / 1000);
    return { value: `${Buffer.from(user).toString('base64url')}.${exp}.${mac(hash, user, exp)}`, expiresAt: exp * 1000 };
  };
  return {
    kind: 'htpasswd',
    lifetimeMs: HTPASSWD_SESSION_MS,
    anonymous: nobody,
    async fromHeader(ctx) {
      const cred = parseAuthorization(ctx.get('authorization'));
      if (cred.kind !== 'basic' || !(await users.check(cred.user, cred.password, ctx.ip))) return undefined;
      return { subject: cred.user, may: () => true };
    },
    challenge: () => `Basic realm=${quoteParam(realm)},charset="UTF-8"`,
    login: async (ctx, user, password) => ((await users.check(user, password, ctx.ip)) ? sign(user) : undefined),
    resume(value) {
      const [u, e, m] = value.split('.');
      const user = Buffer.from(u ?? '', 'base64url').toString('utf8');
      const exp = Number(e);
      const hash = user ? users.hashOf(user) : undefined;
      if (!hash || !m || !(exp * 1000 > Date.now())) return undefined;
      const want = Buffer.from(mac(hash, user, exp));
      const got = Buffer.from(m);
      if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return undefined;
      return { auth: { subject: user, may: () => true }, user, value, expiresAt: exp * 1000 };
    },
    renew: sign,
  };
}
