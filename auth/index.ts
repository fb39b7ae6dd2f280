// Entry points for the server: the registry's auth middleware and the token service.
import type { KeyObject } from 'node:crypto';
import type Koa from 'koa';
import { requiredAccess, type RouteKind } from './access';
import type { AuthConfig, TokenServerConfig } from './config';
import { createHtpasswd, createHtpasswdAuth, type Htpasswd } from './htpasswd';
import { createTokenService, type TokenService } from './tokenservice';
import type { Logger } from './types';
import { type Authorizer, TokenVerifier } from './verifier';

export { requiredAccess, type Access } from './access';
export type { AuthConfig, TokenAuthConfig, HtpasswdAuthConfig, TokenServerConfig } from './config';
export { createTokenService, type TokenService, type Client, type Issued } from './tokenservice';
export { TokenError, type TokenVerifier, type Authorizer } from './verifier';
export type { Htpasswd } from './htpasswd';
export type { RequestAuth, Logger } from './types';

export interface RegistryAuthOptions {
  /** Extra trusted signing keys (the in-process token service's). */
  trustedKeys?: KeyObject[];
  /** Policy decisions beyond the token's own grants (the in-process token service's). */
  authorizer?: Authorizer;
  log?: Logger;
}

/**
 * The middleware that admits or challenges each request, given the scopes it
 * needs: ctx.state.access, or else derived from the matched ctx.state.route.
 * Undefined when no auth is configured.
 */
export function createRegistryAuth(config: AuthConfig | undefined, opts: RegistryAuthOptions = {}): Koa.Middleware | undefined {
  return buildRegistryAuth(config, opts).auth;
}

/**
 * What the admin API and UI sessions (admin/auth.ts) check credentials with: the same
 * verifier, policy and password file as the registry's own auth.
 */
export interface AuthParts {
  /** Token auth: the registry's verifier of bearer tokens. */
  verifier?: TokenVerifier;
  /** Token auth with the token service in this process: its policy. */
  authorizer?: Authorizer;
  /** Token auth with the token service in this process: sign-in and renewal. */
  local?: TokenService;
  htpasswd?: Htpasswd;
}

function buildRegistryAuth(config: AuthConfig | undefined, opts: RegistryAuthOptions): AuthParts & { auth?: Koa.Middleware } {
  const log = opts.log ?? console;
  if (config?.token && config.htpasswd) throw new Error('auth: configure either auth.token or auth.htpasswd, not both');
  let check: Koa.Middleware;
  let verifier: TokenVerifier | undefined;
  let htpasswd: Htpasswd | undefined;
  if (config?.token) {
    verifier = new TokenVerifier(config.token, opts.trustedKeys);
    check = verifier.middleware(opts.authorizer);
  } else if (config?.htpasswd) {
    htpasswd = createHtpasswd(config.htpasswd, log);
    check = createHtpasswdAuth(config.htpasswd, log, htpasswd);
  } else return {};
  const auth: Koa.Middleware = (ctx, next) => {
    const route = ctx.state.route as { kind: RouteKind; name?: string } | undefined;
    if (!ctx.state.access && route) ctx.state.access = requiredAccess(ctx.method, route, new URLSearchParams(ctx.querystring));
    return check(ctx, next);
  };
  return { auth, verifier, htpasswd, authorizer: opts.authorizer };
}

/**
 * What `berth serve` wires in: the registry's auth middleware and, when a
 * `tokenserver` section is configured, the token service in the same process.
 * A registry whose service the local token service serves trusts its key and
 * asks its policy (e.g. to filter the catalog) without further configuration.
 */
export function setupAuth(
  config: { auth?: AuthConfig; tokenserver?: TokenServerConfig },
  log: Logger,
): { auth?: Koa.Middleware; tokens?: Koa.Middleware; parts: AuthParts } {
  const svc = config.tokenserver ? createTokenService(config.tokenserver, log) : undefined;
  const service = config.auth?.token?.service;
  const local = svc && service && config.tokenserver!.services.includes(service) ? svc : undefined;
  const { auth, ...parts } = buildRegistryAuth(config.auth, {
    log,
    trustedKeys: local ? [local.publicKey] : [],
    authorizer: local && service ? local.authorizer(service) : undefined,
  });
  return { auth, tokens: svc?.middleware, parts: { ...parts, local } };
}
