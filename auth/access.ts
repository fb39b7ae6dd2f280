// Access scopes as in Docker's token-auth spec: `type:name:actions`, and the
// scopes each registry route needs (the same mapping as CNCF distribution).

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export type RouteKind = 'base' | 'catalog' | 'blob' | 'upload' | 'manifest' | 'tags' | 'referrers';

/** What the caller's credential must grant for this request; [] means any valid credential. */
export function requiredAccess(
  method: string,
  route: { kind: RouteKind; name?: string },
  query: URLSearchParams,
): Access[] {
  if (route.kind === 'base') return [];
  if (route.kind === 'catalog') return [{ type: 'registry', name: 'catalog', actions: ['*'] }];
  if (!route.name) return [];
  const m = method.toUpperCase();
  let actions: string[];
  if (m === 'GET' || m === 'HEAD') actions = ['pull'];
  else if (m === 'POST' || m === 'PUT' || m === 'PATCH') actions = ['pull', 'push'];
  else if (m === 'DELETE') actions = ['delete'];
  else actions = ['pull'];
  const needs: Access[] = [{ type: 'repository', name: route.name, actions }];
  // A cross-repository mount reads the source repository.
  const from = query.get('from');
  if (route.kind === 'upload' && m === 'POST' && query.has('mount') && from) {
    needs.push({ type: 'repository', name: from, actions: ['pull'] });
  }
  return needs;
}

/** `*` in a grant stands for every action of that resource. */
export function grants(granted: readonly Access[], type: string, name: string, action: string): boolean {
  return granted.some(
    (a) => a.type === type && a.name === name && (a.actions.includes(action) || a.actions.includes('*')),
  );
}

export function covers(granted: readonly Access[], needed: readonly Access[]): boolean {
  return needed.every((n) => n.actions.every((act) => grants(granted, n.type, n.name, act)));
}

/**
 * Parse one scope string. The name may contain ':' (a registry host with a port
 * in some clients' names), so type is up to the first ':' and actions after the last.
 */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const type = scope.slice(0, first);
  let name = scope.slice(first + 1, last);
  // Resource classes (`repository(plugin):name`) are accepted and ignored.
  const cls = /^([a-z0-9]+)\([a-z0-9]+\)$/.exec(type);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a.length > 0);
  name = name.trim();
  if (!name || actions.length === 0) return undefined;
  return { type: cls ? cls[1] : type, name, actions: [...new Set(actions)] };
}

/** Merge entries for the same resource so each appears once. */
export function mergeAccess(list: readonly Access[]): Access[] {
  const byKey = new Map<string, Access>();
  for (const a of list) {
    const key = `${a.type}\u0000${a.name}`;
    const prev = byKey.get(key);
    if (prev) prev.actions = [...new Set([...prev.actions, ...a.actions])];
    else byKey.set(key, { type: a.type, name: a.name, actions: [...new Set(a.actions)] });
  }
  return [...byKey.values()];
}

export function formatScope(a: Access): string {
  return `${a.type}:${a.name}:${a.actions.join(',')}`;
}
