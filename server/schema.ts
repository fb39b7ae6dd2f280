// The machinery behind server/config.ts's SCHEMA: field kinds, coercion of
// YAML/env values with every error collected (not only the first), defaults,
// the REGISTRY_* environment mapping, and printing the effective settings back
// in the config's own syntax (durations as "30s", secrets masked).

export type Field =
  | { kind: 'string'; default?: string; secret?: boolean; enum?: readonly string[]; check?: (v: string) => string | undefined }
  | { kind: 'int'; default?: number; min?: number }
  | { kind: 'bool'; default?: boolean }
  | { kind: 'duration'; default?: string } // Go syntax ("10s", "1h30m"); stored as milliseconds
  | { kind: 'stringlist'; secret?: boolean }
  | { kind: 'object'; fields: Record<string, Field> }
  | { kind: 'map'; of: Field } // free-form keys
  | { kind: 'list'; of: Field }
  | { kind: 'ignored'; why: string }; // distribution keys we accept and do not use

type StringExtra = Partial<{ secret: boolean; enum: readonly string[]; check: (v: string) => string | undefined }>;
export const str = (d?: string, extra: StringExtra = {}): Field => ({ kind: 'string', default: d, ...extra });
export const int = (d?: number, min?: number): Field => ({ kind: 'int', default: d, min });
export const bool = (d?: boolean): Field => ({ kind: 'bool', default: d });
export const dur = (d?: string): Field => ({ kind: 'duration', default: d });
export const obj = (fields: Record<string, Field>): Field => ({ kind: 'object', fields });
/** A distribution key berth accepts with one warning; `why` says what berth does instead. */
export const ignored = (why: string): Field => ({ kind: 'ignored', why });

/** One or more configuration errors; the message lists them all, one per line. */
export class ConfigError extends Error {
  readonly errors: string[];
  constructor(message: string | string[]) {
    const errors = typeof message === 'string' ? [message] : message;
    super(errors.join('\n'));
    this.name = 'ConfigError';
    this.errors = errors;
  }
}

/** What a pass over a config collects: every error and every warning. */
export interface Findings {
  errors: string[];
  warnings: string[];
}

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parse a Go duration ("1h30m", "500ms") to milliseconds. Bare numbers are Go's nanoseconds. */
export function parseDuration(v: unknown, where: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v / 1e6;
  if (typeof v !== 'string' || !/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$/.test(v.trim())) {
    throw new ConfigError(`${where}: "${String(v)}" is not a duration (e.g. 30s, 10m, 24h)`);
  }
  let ms = 0;
  for (const m of v.trim().matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * UNITS[m[2]];
  return ms;
}

/** Milliseconds as a Go duration that parseDuration reads back to the same value ("1h30m", "250ms", "0s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let ns = Math.round(ms * 1e6);
  let out = '';
  for (const [unit, size] of [['h', 3_600e9], ['m', 60e9], ['s', 1e9], ['ms', 1e6], ['us', 1e3], ['ns', 1]] as const) {
    const n = Math.floor(ns / size);
    if (n) out += `${n}${unit}`;
    ns -= n * size;
  }
  return out;
}

function coerce(field: Field, value: unknown, where: string, f: Findings): unknown {
  const fail = (message: string) => {
    f.errors.push(message);
    return undefined;
  };
  switch (field.kind) {
    case 'ignored':
      f.warnings.push(`${where} is accepted for compatibility with distribution but not used: ${field.why}`);
      return undefined;
    case 'string': {
      if (typeof value === 'number' || typeof value === 'boolean') value = String(value);
      if (typeof value !== 'string') return fail(`${where} must be a string`);
      if (field.enum && !field.enum.includes(value)) return fail(`${where} must be one of ${field.enum.join(', ')} (got "${value}")`);
      const problem = field.check?.(value);
      return problem ? fail(`${where}: ${problem}`) : value;
    }
    case 'int': {
      const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n)) return fail(`${where} must be an integer`);
      if (field.min !== undefined && n < field.min) return fail(`${where} must be at least ${field.min}`);
      return n;
    }
    case 'bool':
      if (value === 'true' || value === true) return true;
      if (value === 'false' || value === false) return false;
      return fail(`${where} must be true or false`);
    case 'duration':
      try {
        return parseDuration(value, where);
      } catch (e) {
        return fail((e as Error).message);
      }
    case 'stringlist':
      if (typeof value === 'string') return [value];
      if (!Array.isArray(value) || value.some((x) => typeof x !== 'string')) return fail(`${where} must be a list of strings`);
      return value;
    case 'list':
      if (!Array.isArray(value)) return fail(`${where} must be a list`);
      return value.map((x, i) => coerce(field.of, x, `${where}[${i}]`, f));
    case 'map': {
      if (!value || typeof value !== 'object' || Array.isArray(value)) return fail(`${where} must be a mapping`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = coerce(field.of, v, `${where}.${k}`, f);
      return out;
    }
    case 'object': {
      if (value === null || value === undefined || value === '') value = {};
      if (typeof value !== 'object' || Array.isArray(value)) return fail(`${where} must be a mapping`);
      return coerceObject(field.fields, value as Record<string, unknown>, where, f);
    }
  }
}

/** Coerce a mapping against its fields; unknown keys and bad values go to f.errors, and coercion goes on. */
export function coerceObject(fields: Record<string, Field>, value: Record<string, unknown>, where: string, f: Findings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const key = k.toLowerCase();
    const field = fields[key];
    const path = where ? `${where}.${key}` : key;
    if (!field) {
      const known = Object.keys(fields).join(', ');
      f.errors.push(`unknown configuration key "${path}"${known ? ` (known keys here: ${known})` : ''}`);
      continue;
    }
    const c = coerce(field, v, path, f);
    if (c !== undefined) out[key] = c;
  }
  return out;
}

/** Fill in defaults for every object (present or not) and every scalar with a default. */
export function applyDefaults(fields: Record<string, Field>, value: Record<string, unknown>, skip: (path: string) => boolean, where = ''): void {
  for (const [k, f] of Object.entries(fields)) {
    const path = where ? `${where}.${k}` : k;
    if (skip(path)) continue;
    if (f.kind === 'object') {
      const child = (value[k] ?? {}) as Record<string, unknown>;
      applyDefaults(f.fields, child, skip, path);
      value[k] = child;
    } else if (f.kind === 'list' && f.of.kind === 'object' && Array.isArray(value[k])) {
      const { fields } = f.of;
      (value[k] as Record<string, unknown>[]).forEach((item, i) => applyDefaults(fields, item, skip, `${path}[${i}]`));
    } else if (value[k] === undefined && 'default' in f && f.default !== undefined) {
      value[k] = f.kind === 'duration' ? parseDuration(f.default, path) : f.default;
    }
  }
}

function setPath(target: Record<string, unknown>, keys: string[], v: unknown): void {
  let o = target;
  for (const k of keys.slice(0, -1)) {
    if (!o[k] || typeof o[k] !== 'object') o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]] = v;
}

/** Map REGISTRY_A_B_C onto schema keys, matching greedily so keys containing '_' work too. */
function envPath(fields: Record<string, Field>, parts: string[]): { keys: string[]; field: Field } | undefined {
  for (let n = parts.length; n >= 1; n--) {
    const key = parts.slice(0, n).join('_').toLowerCase();
    const f = fields[key];
    if (!f) continue;
    // An ignored section swallows the keys below it (REGISTRY_REDIS_ADDR): one warning.
    if (n === parts.length || f.kind === 'ignored') return { keys: [key], field: f };
    if (f.kind === 'object') {
      const rest = envPath(f.fields, parts.slice(n));
      if (rest) return { keys: [key, ...rest.keys], field: rest.field };
    }
    if (f.kind === 'map') return { keys: [key, parts.slice(n).join('_').toLowerCase()], field: f.of };
  }
  return undefined;
}

/** Apply REGISTRY_* variables onto a coerced config. `parse` reads structured values (YAML). */
export function applyEnv(fields: Record<string, Field>, config: Record<string, unknown>, env: NodeJS.ProcessEnv, parse: (text: string) => unknown, f: Findings): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('REGISTRY_') || value === undefined) continue;
    const found = envPath(fields, name.slice('REGISTRY_'.length).split('_'));
    if (!found) {
      f.errors.push(`environment variable ${name} does not name a configuration key`);
      continue;
    }
    const where = `${name} (${found.keys.join('.')})`;
    let v: unknown = value;
    if (found.field.kind === 'object' || found.field.kind === 'map' || found.field.kind === 'list') {
      try {
        v = parse(value);
      } catch (e) {
        f.errors.push(`${where}: not valid YAML: ${(e as Error).message}`);
        continue;
      }
    }
    const c = coerce(found.field, v, where, f);
    if (c !== undefined) setPath(config, found.keys, c);
  }
}

const MASK = '********';

/**
 * The effective settings as they would be written in a config file: secrets
 * masked, durations in Go syntax, so the output reads back to the same values.
 */
export function printable(value: unknown, fields: Record<string, Field>): unknown {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = printValue(fields[k], v);
  return out;
}

function printValue(f: Field | undefined, v: unknown): unknown {
  if (!f || v === undefined || v === null) return v;
  switch (f.kind) {
    case 'string':
      return f.secret && v ? MASK : v;
    case 'stringlist':
      return f.secret && Array.isArray(v) ? v.map(() => MASK) : v;
    case 'duration':
      return typeof v === 'number' ? formatDuration(v) : v;
    case 'object':
      return printable(v, f.fields);
    case 'list':
      return Array.isArray(v) ? v.map((x) => printValue(f.of, x)) : v;
    case 'map':
      return typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, printValue(f.of, x)])) : v;
    default:
      return v;
  }
}
