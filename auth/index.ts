// Entry points for the server: the registry's auth middleware and the token service.
import type { KeyObject } from 'node:crypto';
import type Koa from 'koa';
import { requiredAccess, type RouteKind } from './access';
import type { AuthConfig, TokenServerConfig } from './config';
import { createHtpasswdAuth } from './htpasswd';
import { createTokenService } from './tokenservice';
import type { Logger } from './types';
import { type Authorizer, TokenVerifier } from './verifier';

export { requiredAccess, type Access } from './access';
export type { AuthConfig, TokenAuthConfig, HtpasswdAuthConfig, TokenServerConfig } from './config';
export { createTokenService, type TokenService } from './tokenservice';
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
  const log = opts.log ?? console;
  if (config?.token && config.htpasswd) throw new Error('auth: configure either auth.token or auth.htpasswd, not both');
  let check: Koa.Middleware;
  if (config?.token) check = new TokenVerifier(config.token, opts.trustedKeys).middleware(opts.authorizer);
  else if (config?.htpasswd) check = createHtpasswdAuth(config.htpasswd, log);
  else return undefined;
  return (ctx, next) => {
    const route = ctx.state.route as { kind: RouteKind; name?: string } | undefined;
    if (!ctx.state.access && route) ctx.state.access = requiredAccess(ctx.method, route, new URLSearchParams(ctx.querystring));
    return check(ctx, next);
  };
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
): { auth?: Koa.Middleware; tokens?: Koa.Middleware } {
  const svc = config.tokenserver ? createTokenService(config.tokenserver, log) : undefined;
  const service = config.auth?.token?.service;
  const local = svc && service && config.tokenserver!.services.includes(service) ? svc : undefined;
  const auth = createRegistryAuth(config.auth, {
    log,
    trustedKeys: local ? [local.publicKey] : [],
    authorizer: local && service ? local.authorizer(service) : undefined,
  });
  return { auth, tokens: svc?.middleware };
}
