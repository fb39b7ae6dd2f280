// The token service: authenticates users (users file, or anonymous), asks the
// policy what they may do, and signs short-lived JWTs holding only what was both
// asked for and allowed. GET /token (Docker token spec) and POST /token (OAuth2).
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import jwt from 'jsonwebtoken';
import type Koa from 'koa';
import { type Access, formatScope, mergeAccess, parseScope } from './access';
import { readSmallBody } from './body';
import type { TokenServerConfig } from './config';
import { parseAuthorization, quoteParam } from './credentials';
import { algorithmsForKey, ASYMMETRIC_ALGORITHMS, jwkThumbprint, parseCertificates } from './keys';
import { ACTIONS, allowedActions, parsePolicy, type Policy, type Subject } from './policy';
import { ReloadingFile } from './reload';
import { FailureThrottle } from './throttle';
import type { Logger } from './types';
import type { Authorizer } from './verifier';
import { hashPassword, parseUsers, type User, verifyPassword } from './users';

/** Seconds. */
const DEFAULT_EXPIRATION = 300;
const MIN_EXPIRATION = 60;
const DEFAULT_REFRESH_EXPIRATION = 30 * 24 * 3600;
const MAX_SCOPES = 64;
const MAX_FORM_BYTES = 64 * 1024;

export interface TokenService {
  /** Koa middleware answering GET/POST at the configured path and passing everything else on. */
  middleware: Koa.Middleware;
  /** The path it answers at, e.g. `/token`. */
  path: string;
  /** The key tokens are signed with, for a registry in the same process to trust. */
  publicKey: KeyObject;
  /** Policy decisions for a service, e.g. to filter the catalog beyond what a token lists. */
  authorizer(service: string): Authorizer;
  /**
   * A UI sign-in: checks the password (throttled like /token) and issues a token for `service`
   * that lists no access itself (the policy decides each request, through authorizer()) and no
   * x5c chain (it must fit in a cookie). Undefined for bad credentials.
   */
  login(client: Client, name: string, password: string, service: string): Promise<Issued | undefined>;
  /** A fresh session token for a user who still exists (undefined once removed). */
  reissue(name: string, service: string): Issued | undefined;
}

/** Who is signing in, for throttling and logs. */
export interface Client {
  ip: string;
  requestId?: string;
}

export interface Issued {
  token: string;
  /** Seconds. */
  expiresIn: number;
}

class RequestError extends Error {
  constructor(readonly status: number, readonly oauthError: string, message: string) {
    super(message);
  }
}

const clientOf = (ctx: Koa.Context): Client => ({ ip: ctx.ip, requestId: ctx.state.requestId });

async function readForm(ctx: Koa.Context): Promise<URLSearchParams> {
  const type = (ctx.get('content-type') || '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new RequestError(400, 'invalid_request', 'expected an application/x-www-form-urlencoded body');
  }
  const body = await readSmallBody(ctx, MAX_FORM_BYTES);
  if (!body) throw new RequestError(413, 'invalid_request', 'request body too large');
  return new URLSearchParams(body.toString('utf8'));
}

function scopesFrom(values: string[]): Access[] {
  const scopes = values.flatMap((v) => v.split(' ')).filter((s) => s.length > 0);
  if (scopes.length > MAX_SCOPES) throw new RequestError(400, 'invalid_scope', 'too many scopes');
  const parsed: Access[] = [];
  for (const s of scopes) {
    const a = parseScope(s);
    // Unparseable scopes grant nothing; they are not an error.
    if (a) parsed.push(a);
  }
  return mergeAccess(parsed);
}

function signingAlgorithm(key: KeyObject): string {
  const alg = algorithmsForKey(key, ASYMMETRIC_ALGORITHMS)[0];
  if (!alg) throw new Error('tokenserver.key: use an RSA or an EC P-256/P-384/P-521 private key');
  return alg;
}

export function createTokenService(cfg: TokenServerConfig, log: Logger = console): TokenService {
  for (const k of ['issuer', 'key', 'users', 'policy'] as const) {
    if (!cfg[k]) throw new Error(`tokenserver.${k} is required`);
  }
  if (!Array.isArray(cfg.services) || cfg.services.length === 0) {
    throw new Error('tokenserver.services: list at least one service (registry) name');
  }
  const expiration = Math.floor((cfg.expiration ?? DEFAULT_EXPIRATION * 1000) / 1000);
  if (!(expiration >= MIN_EXPIRATION)) throw new Error(`tokenserver.expiration must be at least ${MIN_EXPIRATION}s`);
  const refreshExpiration = Math.floor((cfg.refreshexpiration ?? DEFAULT_REFRESH_EXPIRATION * 1000) / 1000);
  if (!(refreshExpiration >= expiration)) throw new Error('tokenserver.refreshexpiration must be at least tokenserver.expiration');
  const path = cfg.path ?? '/token';
  const privateKey = crypto.createPrivateKey(fs.readFileSync(cfg.key));
  const publicKey = crypto.createPublicKey(privateKey);
  const algorithm = signingAlgorithm(publicKey) as jwt.Algorithm;
  const kid = jwkThumbprint(publicKey);
  let x5c: string[] | undefined;
  if (cfg.certificate) {
    const certs = parseCertificates(fs.readFileSync(cfg.certificate, 'utf8'));
    if (certs.length === 0) throw new Error(`tokenserver.certificate: no PEM certificates in ${cfg.certificate}`);
    if (!certs[0].publicKey.equals(publicKey)) throw new Error('tokenserver.certificate: the first certificate is not for tokenserver.key');
    x5c = certs.map((c) => c.raw.toString('base64'));
  }
  const users = new ReloadingFile(cfg.users, parseUsers, (e) => log.warn(e.message), new Map<string, User>());
  const policy = new ReloadingFile<Policy>(cfg.policy, parsePolicy, (e) => log.warn(e.message));
  const throttle = new FailureThrottle();
  // Checked when the user does not exist, so the answer takes as long as for a wrong password.
  const dummyHash = hashPassword(crypto.randomBytes(16).toString('hex'));
  const realm = cfg.realm ?? 'berth';

  const subjectOf = (u: User | undefined): Subject | undefined => (u ? { name: u.name, groups: u.groups } : undefined);

  /** Fingerprint of the stored hash: a password change or removal invalidates refresh tokens. */
  const credentialTag = (u: User) => crypto.createHash('sha256').update(u.password).digest('base64url').slice(0, 22);

  async function authenticate(client: Client, name: string, password: string): Promise<User> {
    await throttle.wait(name, client.ip);
    const user = users.get().get(name);
    const ok = (await verifyPassword(password, user?.password ?? (await dummyHash))) && user !== undefined;
    if (!ok) {
      throttle.failed(name, client.ip);
      // Unknown names are not logged: they are often passwords typed into the wrong field.
      const msg = user ? `token: failed login for user ${user.name} from ${client.ip}` : `token: failed login for an unknown user from ${client.ip}`;
      if (client.requestId) log.warn(msg, { requestId: client.requestId });
      else log.warn(msg);
      throw new RequestError(401, 'invalid_grant', 'invalid username or password');
    }
    throttle.succeeded(name);
    return user!;
  }

  function checkService(service: string | null): string {
    if (!service) throw new RequestError(400, 'invalid_request', 'service is required');
    if (!cfg.services.includes(service)) throw new RequestError(400, 'invalid_request', 'unknown service');
    return service;
  }

  /** The intersection of what was asked and what the policy allows; resources with nothing granted are left out. */
  function grant(service: string, user: User | undefined, asked: Access[]): Access[] {
    const p = policy.get();
    const subject = subjectOf(user);
    const out: Access[] = [];
    for (const a of asked) {
      const allowed = allowedActions(p, service, subject, a.type, a.name);
      const all = allowed.has('*') || ACTIONS.every((x) => allowed.has(x));
      const actions = a.actions.filter((x) => allowed.has(x) || allowed.has('*') || (x === '*' && all));
      if (actions.length > 0) out.push({ type: a.type, name: a.name, actions });
    }
    return out;
  }

  function issue(service: string, user: User | undefined, access: Access[], chain = x5c) {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: cfg.issuer,
      sub: user?.name ?? '',
      aud: service,
      exp: now + expiration,
      nbf: now,
      iat: now,
      jti: crypto.randomBytes(16).toString('base64url'),
      access,
    };
    const token = jwt.sign(claims, privateKey, { algorithm, keyid: kid, ...(chain ? { header: { alg: algorithm, x5c: chain } as jwt.JwtHeader } : {}) });
    return { token, access_token: token, expires_in: expiration, issued_at: new Date(now * 1000).toISOString() };
  }

  function refreshToken(user: User): string {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: cfg.issuer, sub: user.name, aud: cfg.issuer, typ: 'refresh', cred: credentialTag(user), iat: now, exp: now + refreshExpiration };
    return jwt.sign(claims, privateKey, { algorithm, keyid: kid });
  }

  function userFromRefreshToken(token: string): User {
    try {
      const c = jwt.verify(token, publicKey, { algorithms: [algorithm], issuer: cfg.issuer, audience: cfg.issuer }) as jwt.JwtPayload;
      const user = typeof c.sub === 'string' ? users.get().get(c.sub) : undefined;
      if (c.typ === 'refresh' && user && typeof c.cred === 'string' && c.cred === credentialTag(user)) return user;
    } catch {
      // fall through: any defect is the same answer
    }
    throw new RequestError(401, 'invalid_grant', 'invalid or expired refresh token');
  }

  async function handleGet(ctx: Koa.Context) {
    const q = new URLSearchParams(ctx.querystring);
    const cred = parseAuthorization(ctx.get('authorization') || undefined);
    if (cred.kind === 'invalid' || cred.kind === 'bearer') throw new RequestError(401, 'invalid_client', 'unsupported authorization');
    const service = checkService(q.get('service'));
    let user: User | undefined;
    if (cred.kind === 'basic') {
      user = await authenticate(clientOf(ctx), cred.user, cred.password);
      const account = q.get('account');
      if (account && account !== user.name) throw new RequestError(400, 'invalid_request', 'account does not match the credentials');
    }
    const access = grant(service, user, scopesFrom(q.getAll('scope')));
    const body: Record<string, unknown> = issue(service, user, access);
    if (user && q.get('offline_token') === 'true') body.refresh_token = refreshToken(user);
    ctx.body = body;
  }

  async function handlePost(ctx: Koa.Context) {
    const f = await readForm(ctx);
    const service = checkService(f.get('service'));
    const grantType = f.get('grant_type');
    let user: User;
    let refresh = false;
    if (grantType === 'password') {
      const name = f.get('username');
      const password = f.get('password');
      if (!name || password === null) throw new RequestError(400, 'invalid_request', 'username and password are required');
      user = await authenticate(clientOf(ctx), name, password);
      refresh = f.get('access_type') === 'offline';
    } else if (grantType === 'refresh_token') {
      const rt = f.get('refresh_token');
      if (!rt) throw new RequestError(400, 'invalid_request', 'refresh_token is required');
      await throttle.wait(undefined, ctx.ip);
      try {
        user = userFromRefreshToken(rt);
      } catch (err) {
        throttle.failed(undefined, ctx.ip);
        throw err;
      }
      refresh = true;
    } else {
      throw new RequestError(400, 'unsupported_grant_type', 'grant_type must be password or refresh_token');
    }
    const access = grant(service, user, scopesFrom(f.getAll('scope')));
    const body: Record<string, unknown> = {
      ...issue(service, user, access),
      scope: access.map(formatScope).join(' '),
    };
    if (refresh) body.refresh_token = refreshToken(user);
    ctx.body = body;
  }

  const middleware: Koa.Middleware = async (ctx, next) => {
    if (ctx.path !== path) return next();
    ctx.set('Cache-Control', 'no-store');
    try {
      if (ctx.method === 'GET') await handleGet(ctx);
      else if (ctx.method === 'POST') await handlePost(ctx);
      else {
        ctx.set('Allow', 'GET, POST');
        throw new RequestError(405, 'invalid_request', 'method not allowed');
      }
    } catch (err) {
      if (!(err instanceof RequestError)) throw err;
      ctx.status = err.status;
      if (err.status === 401) ctx.set('WWW-Authenticate', `Basic realm=${quoteParam(realm)}`);
      ctx.body = {
        error: err.oauthError,
        error_description: err.message,
        errors: [{ code: err.status === 401 ? 'UNAUTHORIZED' : 'INVALID_REQUEST', message: err.message }],
      };
    }
  };

  const session = (service: string, user: User): Issued => {
    const { token, expires_in } = issue(service, user, [], undefined);
    return { token, expiresIn: expires_in };
  };

  return {
    middleware,
    path,
    publicKey,
    async login(client, name, password, service) {
      checkService(service);
      try {
        return session(service, await authenticate(client, name, password));
      } catch (e) {
        if (e instanceof RequestError && e.status === 401) return undefined;
        throw e;
      }
    },
    reissue(name, service) {
      const user = users.get().get(name);
      return user && session(service, user);
    },
    authorizer: (service) => (subject, type, name, action) => {
      const allowed = allowedActions(policy.get(), service, subjectOf(subject ? users.get().get(subject) : undefined), type, name);
      return allowed.has(action) || allowed.has('*');
    },
  };
}
