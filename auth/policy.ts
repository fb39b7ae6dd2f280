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

function parseGrant(v: unknown, where: string, errors: string[]): Map<string, Set<string>> {
  if (v === null || v === undefined) return new Map();
  if (typeof v !== 'object' || Array.isArray(v)) {
    errors.push(`${where}: expected principal: [actions]`);
    return new Map();
  }
  const grant = new Map<string, Set<string>>();
  for (const [who, acts] of Object.entries(v)) {
    if (!Array.isArray(acts)) {
      errors.push(`${where}.${who}: expected a list of actions`);
      continue;
    }
    const set = new Set<string>();
    for (const a of acts) {
      if (a === '*') ACTIONS.forEach((x) => set.add(x));
      else if ((ACTIONS as readonly string[]).includes(a)) set.add(a);
      else errors.push(`${where}.${who}: unknown action "${a}" (pull, push, delete or *)`);
    }
    grant.set(who, set);
  }
  return grant;
}

function principals(v: unknown, where: string, errors: string[]): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    errors.push(`${where}: expected a list`);
    return [];
  }
  return v;
}

/** Why a repository pattern can never work as meant, or undefined. */
function patternProblem(p: string): string | undefined {
  if (!/^[a-z0-9._/*?{}-]+$/.test(p)) return 'only lowercase letters, digits, . _ - / and the wildcards * ** ? {user} may appear';
  if (/[{}]/.test(p.replaceAll('{user}', ''))) return 'braces may only hold {user}';
  if (p.includes('***')) return '"***" is not a wildcard: * matches within a component, ** across them';
  if (p.startsWith('/') || p.endsWith('/') || p.includes('//')) return 'a repository name has no empty path component (leading, trailing or double "/")';
  return undefined;
}

/** Parse a policy file, collecting every problem (unknown keys, bad patterns, unknown actions). */
export function readPolicy(text: string): { policy?: Policy; errors: string[] } {
  const errors: string[] = [];
  let doc: Record<string, unknown>;
  try {
    doc = (YAML.parse(text) ?? {}) as Record<string, unknown>;
  } catch (e) {
    return { errors: [`not valid YAML: ${(e as Error).message}`] };
  }
  if (typeof doc !== 'object' || Array.isArray(doc)) return { errors: ['expected a mapping'] };
  for (const k of Object.keys(doc)) {
    if (!['admins', 'catalog', 'default', 'rules'].includes(k)) errors.push(`unknown key "${k}" (known: admins, catalog, default, rules)`);
  }
  let rawRules = doc.rules ?? [];
  if (!Array.isArray(rawRules)) {
    errors.push('rules: expected a list');
    rawRules = [];
  }
  const rules: Rule[] = [];
  (rawRules as Record<string, unknown>[]).forEach((r, i) => {
    const where = `rules[${i}]`;
    if (!r || typeof r !== 'object' || typeof r.repository !== 'string' || !r.repository) {
      errors.push(`${where}: "repository" pattern required`);
      return;
    }
    for (const k of Object.keys(r)) {
      if (!['repository', 'grant', 'services'].includes(k)) errors.push(`${where}: unknown key "${k}" (known: repository, grant, services)`);
    }
    const problem = patternProblem(r.repository);
    if (problem) errors.push(`${where}: invalid pattern "${r.repository}": ${problem}`);
    const services = r.services === undefined ? undefined : principals(r.services, `${where}.services`, errors);
    rules.push({ pattern: r.repository, services, grant: parseGrant(r.grant, `${where}.grant`, errors), order: i });
  });
  const policy: Policy = {
    admins: principals(doc.admins, 'admins', errors),
    catalog: doc.catalog === undefined ? ['authenticated'] : principals(doc.catalog, 'catalog', errors),
    default: parseGrant(doc.default, 'default', errors),
    rules,
  };
  return errors.length ? { errors } : { policy, errors };
}

/** A valid policy, or an Error listing every problem. */
export function parsePolicy(text: string): Policy {
  const { policy, errors } = readPolicy(text);
  if (!policy) throw new Error(errors.join('; '));
  return policy;
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
