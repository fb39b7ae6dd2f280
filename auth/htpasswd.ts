// distribution's `auth.htpasswd`: Basic auth on the registry itself against an
// Apache htpasswd file of bcrypt entries. Any valid user may do anything, as in
// distribution; per-repository rights need the token service.
import crypto from 'node:crypto';
import bcrypt from 'bcryptjs';
import type Koa from 'koa';
import type { HtpasswdAuthConfig } from './config';
import { parseAuthorization, quoteParam } from './credentials';
import { ReloadingFile } from './reload';
import { FailureThrottle } from './throttle';
import type { Logger, RequestAuth } from './types';


export function parseHtpasswd(text: string, log: Logger, file: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
      // Only bcrypt is safe enough; other htpasswd formats (MD5, SHA1, crypt) are refused.
      log.warn(`${file}:${i + 1}: skipped, not a user:bcrypt entry`);
      continue;
    }
    users.set(user, hash);
  }
  return users;
}

/** The users of an htpasswd file: password checks (throttled) for the registry and for UI sign-in. */
export interface Htpasswd {
  /** Whether the password is right; holds repeated failures back (auth/throttle.ts). */
  check(user: string, password: string, ip: string): Promise<boolean>;
  /** The user's current bcrypt entry (undefined once removed): what a UI session is bound to. */
  hashOf(user: string): string | undefined;
}

export function createHtpasswd(cfg: HtpasswdAuthConfig, log: Logger): Htpasswd {
  if (!cfg.path) throw new Error('auth.htpasswd.path is required');
  if (!cfg.realm) throw new Error('auth.htpasswd.realm is required');
  const file = new ReloadingFile(cfg.path, (t) => parseHtpasswd(t, log, cfg.path), (e) => log.warn(e.message));
  const throttle = new FailureThrottle();
  // Checked when the user is unknown, so the answer takes as long as for a wrong password.
  const dummyHash = bcrypt.hash(crypto.randomBytes(16).toString('hex'), 10);
  return {
    async check(user, password, ip) {
      await throttle.wait(user, ip);
      const hash = file.get().get(user);
      const ok = (await bcrypt.compare(password, hash ?? (await dummyHash))) && hash !== undefined;
      if (ok) throttle.succeeded(user);
      else throttle.failed(user, ip);
      return ok;
    },
    hashOf: (user) => file.get().get(user),
  };
}

export function createHtpasswdAuth(cfg: HtpasswdAuthConfig, log: Logger, users = createHtpasswd(cfg, log)): Koa.Middleware {
  const challenge = (ctx: Koa.Context, message: string) => {
    ctx.status = 401;
    ctx.set('WWW-Authenticate', `Basic realm=${quoteParam(cfg.realm)},charset="UTF-8"`);
    ctx.body = { errors: [{ code: 'UNAUTHORIZED', message, detail: null }] };
  };
  return async (ctx, next) => {
    const cred = parseAuthorization(ctx.get('authorization') || undefined);
    if (cred.kind === 'none') return challenge(ctx, 'authentication required');
    if (cred.kind !== 'basic') return challenge(ctx, 'invalid authorization header');
    if (!(await users.check(cred.user, cred.password, ctx.ip))) return challenge(ctx, 'invalid username or password');
    const auth: RequestAuth = { subject: cred.user, may: () => true };
    ctx.state.auth = auth;
    await next();
  };
}
