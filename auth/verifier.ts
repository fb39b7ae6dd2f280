// The registry side of token auth: a Koa middleware that checks the bearer JWT
// of each request against the scopes its route needs (ctx.state.access).
import type { KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type Koa from 'koa';
import { LRUCache } from 'lru-cache';
import { type Access, covers, formatScope, grants } from './access';
import type { TokenAuthConfig } from './config';
import { parseAuthorization, quoteParam } from './credentials';
import { ASYMMETRIC_ALGORITHMS, KeyError, TrustStore, algorithmsForKey } from './keys';
import type { RequestAuth } from './types';

/** Clock skew tolerated on exp/nbf, in seconds. */
export const LEEWAY_SECONDS = 30;

export class TokenError extends Error {}

export interface VerifiedToken {
  subject?: string;
  access: Access[];
}

/** Decides whether a subject may do something beyond what its token lists (the in-process policy). */
export type Authorizer = (subject: string | undefined, type: string, name: string, action: string) => boolean;

export function configuredAlgorithms(cfg: TokenAuthConfig): string[] {
  const algs = cfg.signingalgorithms ?? [...ASYMMETRIC_ALGORITHMS];
  for (const a of algs) {
    if (!(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(a)) {
      throw new Error(`auth.token.signingalgorithms: ${a} is not accepted (use ${ASYMMETRIC_ALGORITHMS.join(', ')})`);
    }
  }
  if (algs.length === 0) throw new Error('auth.token.signingalgorithms: empty');
  return algs;
}

function validAccess(v: unknown): v is Access[] {
  return (
    Array.isArray(v) &&
    v.every(
      (a) =>
        a !== null &&
        typeof a === 'object' &&
        typeof a.type === 'string' &&
        typeof a.name === 'string' &&
        Array.isArray(a.actions) &&
        a.actions.every((x: unknown) => typeof x === 'string'),
    )
  );
}

export class TokenVerifier {
  private readonly trust: TrustStore;
  private readonly algorithms: string[];
  /**
   * Tokens that passed, until they expire: a client sends the same token for every request of a
   * pull or push, and a signature check costs far more than the request's own work. Bounded by
   * the tokens' total length; failures are never cached.
   */
  private readonly verified = new LRUCache<string, VerifiedToken & { exp: number }>({
    maxSize: 8 << 20,
    sizeCalculation: (_v, token) => token.length,
  });

  constructor(private readonly cfg: TokenAuthConfig, trustedKeys: KeyObject[] = []) {
    for (const k of ['realm', 'service', 'issuer'] as const) {
      if (!cfg[k]) throw new Error(`auth.token.${k} is required`);
    }
    this.algorithms = configuredAlgorithms(cfg);
    this.trust = new TrustStore({ rootcertbundle: cfg.rootcertbundle, jwks: cfg.jwks, keys: trustedKeys });
  }

  /** The token's subject and grants, and its expiry (seconds since the epoch). Throws TokenError. */
  verify(token: string): VerifiedToken & { exp: number } {
    const hit = this.verified.get(token);
    if (hit && Date.now() / 1000 < hit.exp + LEEWAY_SECONDS) return hit;
    if (hit) this.verified.delete(token);
    const checked = this.check(token);
    this.verified.set(token, checked);
    return checked;
  }

  private check(token: string): VerifiedToken & { exp: number } {
    let decoded: jwt.Jwt | null;
    try {
      // jws throws on a JWT-typed header with a non-JSON payload.
      decoded = jwt.decode(token, { complete: true });
    } catch {
      decoded = null;
    }
    if (!decoded || typeof decoded.header !== 'object' || typeof decoded.payload !== 'object' || !decoded.payload) {
      throw new TokenError('malformed token');
    }
    const header = decoded.header as jwt.JwtHeader & { x5c?: unknown };
    if (typeof header.alg !== 'string' || !this.algorithms.includes(header.alg)) {
      throw new TokenError('signing algorithm not accepted');
    }
    let key: KeyObject;
    try {
      key = this.trust.keyFor(header);
    } catch (err) {
      if (err instanceof KeyError) throw new TokenError(err.message);
      throw err;
    }
    const algorithms = algorithmsForKey(key, this.algorithms);
    if (!algorithms.includes(header.alg as never)) throw new TokenError('algorithm does not match the signing key');
    let payload: jwt.JwtPayload;
    try {
      payload = jwt.verify(token, key, {
        algorithms,
        issuer: this.cfg.issuer,
        audience: this.cfg.service,
        clockTolerance: LEEWAY_SECONDS,
      }) as jwt.JwtPayload;
    } catch (err) {
      throw new TokenError((err as Error).message);
    }
    // A token without expiry would be valid forever; refresh tokens carry no access claim.
    if (typeof payload.exp !== 'number') throw new TokenError('token has no expiry');
    if (!validAccess(payload.access)) throw new TokenError('token has no valid access claim');
    return { subject: typeof payload.sub === 'string' && payload.sub ? payload.sub : undefined, access: payload.access, exp: payload.exp };
  }

  realm(ctx: Koa.Context): string {
    if (!this.cfg.autoredirect) return this.cfg.realm;
    return `${ctx.protocol}://${ctx.host}${new URL(this.cfg.realm, 'http://x').pathname}`;
  }

  middleware(authorizer?: Authorizer): Koa.Middleware {
    return async (ctx, next) => {
      const needed: Access[] = ctx.state.access ?? [];
      const cred = parseAuthorization(ctx.get('authorization') || undefined);
      if (cred.kind !== 'bearer') {
        return this.challenge(ctx, needed, cred.kind === 'none' ? undefined : 'invalid_token', 'authentication required');
      }
      let tok: VerifiedToken;
      try {
        tok = this.verify(cred.token);
      } catch (err) {
        if (!(err instanceof TokenError)) throw err;
        return this.challenge(ctx, needed, 'invalid_token', 'invalid token', err.message);
      }
      if (!covers(tok.access, needed)) {
        return this.challenge(ctx, needed, 'insufficient_scope', 'requested access to the resource is denied');
      }
      const auth: RequestAuth = {
        subject: tok.subject,
        may: (type, name, action) =>
          grants(tok.access, type, name, action) || (authorizer?.(tok.subject, type, name, action) ?? false),
      };
      ctx.state.auth = auth;
      await next();
    };
  }

  private challenge(
    ctx: Koa.Context,
    needed: Access[],
    error: 'invalid_token' | 'insufficient_scope' | undefined,
    message: string,
    detail?: string,
  ): void {
    let h = `Bearer realm=${quoteParam(this.realm(ctx))},service=${quoteParam(this.cfg.service)}`;
    if (needed.length > 0) h += `,scope=${quoteParam(needed.map(formatScope).join(' '))}`;
    if (error) h += `,error=${quoteParam(error)}`;
    ctx.status = 401;
    ctx.set('WWW-Authenticate', h);
    // 401 even for a valid token lacking scope, as distribution does: clients then fetch a
    // token for the scope in the challenge instead of giving up.
    const code = error === 'insufficient_scope' ? 'DENIED' : 'UNAUTHORIZED';
    ctx.body = { errors: [{ code, message, detail: detail ?? needed }] };
  }
}
