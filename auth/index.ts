// Entry points for the server: the registry's auth middleware and the token service.
import type { KeyObject } from 'node:crypto';
import type Koa from 'koa';
import type { AuthConfig } from './config';
import { createHtpasswdAuth } from './htpasswd';
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
 * The middleware that admits or challenges each request, given the scopes the
 * route put in ctx.state.access; undefined when no auth is configured.
 */
export function createRegistryAuth(config: AuthConfig | undefined, opts: RegistryAuthOptions = {}): Koa.Middleware | undefined {
  const log = opts.log ?? console;
  if (config?.token && config.htpasswd) throw new Error('auth: configure either token or htpasswd, not both');
  if (config?.token) return new TokenVerifier(config.token, opts.trustedKeys).middleware(opts.authorizer);
  if (config?.htpasswd) return createHtpasswdAuth(config.htpasswd, log);
  return undefined;
}
