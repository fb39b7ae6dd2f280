// The admin API's front door, wired in by server/serve.ts: who the caller is
// (admin/auth.ts) and the UI's session endpoints (admin/session.ts). The data
// endpoints come after it and read ctx.state.auth.
import type Koa from 'koa';
import type { AuthParts } from '../auth/index';
import type { Config } from '../server/config';
import { adminAuth } from './auth';
import { createIdentity } from './identity';
import { SESSION_PATH, sessionRoutes } from './session';

export function adminFrontDoor(config: Config, parts: AuthParts): Koa.Middleware {
  const publicHost = config.http.host ? new URL(config.http.host).host : undefined;
  const identity = createIdentity(config, parts, config.tokenserver?.expiration);
  const auth = adminAuth(identity, { publicHost, sessionPath: SESSION_PATH });
  const session = sessionRoutes(identity, {
    publicHost,
    deletesEnabled: config.storage.delete.enabled && !config.storage.maintenance.readonly.enabled,
  });
  return (ctx, next) => auth(ctx, () => session(ctx, next));
}
