// Access policy: rules keyed by repository name patterns grant actions to
// principals. For a repository, the most specific matching rule decides (see
// README.md, "Access control"); no matching rule means the `default` grants apply.
import YAML from 'yaml';

export const ACTIONS = ['pull', 'push', 'delete'] as const;

export interface Subject {
  name: string;
  groups: string[];
}

interface Rule {
  pattern: string;
  services?: string[];
  grant: Map<string, Set<string>>;
  order: number;
}

export interface Policy {
  admins: string[];
  catalog: string[];
  default: Map<string, Set<string>>;
  rules: Rule[];
}

function parseGrant(v: unknown, where: string): Map<string, Set<string>> {
  if (v === null || v === undefined) return new Map();
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: expected principal: [actions]`);
  const grant = new Map<string, Set<string>>();
  for (const [who, acts] of Object.entries(v)) {
    if (!Array.isArray(acts)) throw new Error(`${where}.${who}: expected a list of actions`);
    const set = new Set<string>();
    for (const a of acts) {
      if (a === '*') ACTIONS.forEach((x) => set.add(x));
      else if ((ACTIONS as readonly string[]).includes(a)) set.add(a);
      else throw new Error(`${where}.${who}: unknown action "${a}" (pull, push, delete or *)`);
    }
    grant.set(who, set);
  }
  return grant;
}

function principals(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`${where}: expected a list`);
  return v;
}

export function parsePolicy(text: string): Policy {
  const doc = (YAML.parse(text) ?? {}) as Record<string, unknown>;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error('expected a mapping');
  for (const k of Object.keys(doc)) {
    if (!['admins', 'catalog', 'default', 'rules'].includes(k)) throw new Error(`unknown key "${k}"`);
  }
  const rawRules = doc.rules ?? [];
  if (!Array.isArray(rawRules)) throw new Error('rules: expected a list');
  const rules = rawRules.map((r: Record<string, unknown>, i: number): Rule => {
    const where = `rules[${i}]`;
    if (!r || typeof r.repository !== 'string' || !r.repository) throw new Error(`${where}: "repository" pattern required`);
    for (const k of Object.keys(r)) {
      if (!['repository', 'grant', 'services'].includes(k)) throw new Error(`${where}: unknown key "${k}"`);
    }
    if (!/^[a-z0-9._/*?{}-]+$/.test(r.repository)) throw new Error(`${where}: invalid pattern "${r.repository}"`);
    const services = r.services === undefined ? undefined : principals(r.services, `${where}.services`);
    return { pattern: r.repository, services, grant: parseGrant(r.grant, `${where}.grant`), order: i };
  });
  return {
    admins: principals(doc.admins, 'admins'),
    catalog: doc.catalog === undefined ? ['authenticated'] : principals(doc.catalog, 'catalog'),
    default: parseGrant(doc.default, 'default'),
    rules,
  };
}

const globCache = new Map<string, RegExp>();

/** `*` and `?` stay within one path component; `**` crosses `/`. */
export function globToRegExp(glob: string): RegExp {
  let re = globCache.get(glob);
  if (re) return re;
  let src = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      src += '.*';
      i++;
    } else if (c === '*') src += '[^/]*';
    else if (c === '?') src += '[^/]';
    else src += c.replace(/[.+^${}()|[\]\\-]/g, '\\$&');
  }
  re = new RegExp(`^${src}$`);
  if (globCache.size > 1000) globCache.clear();
  globCache.set(glob, re);
  return re;
}

/** Higher is more specific: any exact name beats any glob; then more literal characters. */
function specificity(pattern: string): number {
  if (!/[*?]/.test(pattern)) return Number.MAX_SAFE_INTEGER;
  return pattern.replace(/[*?]/g, '').length;
}

function applies(who: string, subject: Subject | undefined): boolean {
  if (who === 'anonymous') return true;
  if (!subject) return false;
  if (who === 'authenticated') return true;
  if (who.startsWith('group:')) return subject.groups.includes(who.slice(6));
  return who === subject.name;
}

export function isAdmin(policy: Policy, subject: Subject | undefined): boolean {
  return policy.admins.some((who) => who !== 'anonymous' && applies(who, subject));
}

/** The actions `subject` (undefined: anonymous) may perform on a resource of `service`. */
export function allowedActions(
  policy: Policy,
  service: string,
  subject: Subject | undefined,
  type: string,
  name: string,
): Set<string> {
  if (type === 'registry' && name === 'catalog') {
    const ok = isAdmin(policy, subject) || policy.catalog.some((who) => applies(who, subject));
    return new Set(ok ? ['*'] : []);
  }
  if (type !== 'repository') return new Set();
  if (isAdmin(policy, subject)) return new Set(ACTIONS);
  let best: { rule: Rule; score: number } | undefined;
  for (const rule of policy.rules) {
    if (rule.services && !rule.services.includes(service)) continue;
    if (rule.pattern.includes('{user}') && !subject) continue;
    const pattern = rule.pattern.replaceAll('{user}', subject?.name ?? '');
    if (!globToRegExp(pattern).test(name)) continue;
    const score = specificity(pattern);
    if (!best || score > best.score) best = { rule, score };
  }
  const grant = best ? best.rule.grant : policy.default;
  const out = new Set<string>();
  for (const [who, acts] of grant) if (applies(who, subject)) acts.forEach((a) => out.add(a));
  return out;
}
