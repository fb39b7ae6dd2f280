// Path matching for /v2 routes. Repository names contain '/', which @koa/router's
// path syntax cannot express, so one small matcher splits a path into the
// resource it addresses; names are validated by the handlers.
export type RouteKind = 'base' | 'catalog' | 'blob' | 'upload' | 'manifest' | 'tags' | 'referrers';

export interface Route {
  kind: RouteKind;
  name?: string;
  /** Digest (blob, referrers), tag or digest (manifest), or upload id (upload; '' for POST). */
  reference?: string;
}

const NAMED = /^\/v2\/(.+?)\/(?:(blobs\/uploads)\/?([^/]*)|(blobs)\/([^/]+)|(manifests)\/([^/]+)|(tags)\/list|(referrers)\/([^/]+))$/;

export function matchRoute(path: string): Route | undefined {
  if (path === '/v2/' || path === '/v2') return { kind: 'base' };
  if (path === '/v2/_catalog') return { kind: 'catalog' };
  // The name is the shortest prefix after which the rest parses as a route suffix.
  const m = NAMED.exec(path);
  if (!m) return undefined;
  const name = m[1];
  if (m[2]) return { kind: 'upload', name, reference: m[3] };
  if (m[4]) return { kind: 'blob', name, reference: m[5] };
  if (m[6]) return { kind: 'manifest', name, reference: m[7] };
  if (m[8]) return { kind: 'tags', name };
  return { kind: 'referrers', name, reference: m[10] };
}
