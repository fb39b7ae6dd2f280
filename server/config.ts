// Configuration: one typed object from a YAML/JSON file in the format of CNCF
// distribution's config.yml, with REGISTRY_<PATH>_<KEY> environment overrides.
// A declarative schema drives validation, defaults and the env mapping, so a
// new section is one entry in SCHEMA plus its type in Config.
import fs from 'node:fs';
import YAML from 'yaml';
import type { AuthConfig, TokenServerConfig } from '../auth/config';
import type { S3DriverOptions } from '../storage/drivers/s3';
import { isValidName } from '../storage/names';

export type Field =
  | { kind: 'string'; default?: string; secret?: boolean; enum?: readonly string[] }
  | { kind: 'int'; default?: number; min?: number }
  | { kind: 'bool'; default?: boolean }
  | { kind: 'duration'; default?: string } // Go syntax ("10s", "1h30m"); stored as milliseconds
  | { kind: 'stringlist'; secret?: boolean }
  | { kind: 'object'; fields: Record<string, Field> }
  | { kind: 'map'; of: Field } // free-form keys
  | { kind: 'list'; of: Field }
  | { kind: 'ignored'; why: string }; // distribution keys we accept and do not use

const str = (d?: string, extra: Partial<{ secret: boolean; enum: readonly string[] }> = {}): Field => ({ kind: 'string', default: d, ...extra });
const int = (d?: number, min?: number): Field => ({ kind: 'int', default: d, min });
const bool = (d?: boolean): Field => ({ kind: 'bool', default: d });
const dur = (d?: string): Field => ({ kind: 'duration', default: d });
const obj = (fields: Record<string, Field>): Field => ({ kind: 'object', fields });
const ignored = (why: string): Field => ({ kind: 'ignored', why });

/** Storage drivers; exactly one may be configured. */
export const STORAGE_DRIVERS = ['filesystem', 's3'] as const;

/** Sections that only exist (and get defaults) when configured. */
const OPTIONAL_SECTIONS = ['auth', 'auth.token', 'auth.htpasswd', 'tokenserver', 'proxy'];

/** A pull-through cache's upstream: distribution's `proxy` keys plus berth's expiry and size cap (proxy/). */
const upstreamFields = {
  remoteurl: str(),
  username: str(),
  password: str(undefined, { secret: true }),
  ttl: dur('10m'), // how long a cached tag is served before the upstream is asked again
  expire: dur('168h'), // cached images not pulled for this long go at the next GC run; 0: never
  maxsize: int(0, 0), // bytes of cached blobs per upstream at most (least recently pulled go first); 0: no cap
};

export const SCHEMA: Record<string, Field> = {
  version: str('0.1'),
  log: obj({
    level: str('info', { enum: ['error', 'warn', 'info', 'debug'] }),
    formatter: ignored('berth always logs JSON lines'),
    fields: { kind: 'map', of: str() },
    accesslog: obj({ disabled: bool(false) }),
  }),
  storage: obj({
    filesystem: obj({ rootdirectory: str(), maxthreads: ignored('Node.js does file I/O on its own thread pool') }),
    s3: obj({
      bucket: str(),
      region: str(),
      regionendpoint: str(),
      forcepathstyle: bool(false),
      accesskey: str(),
      secretkey: str(undefined, { secret: true }),
      sessiontoken: str(undefined, { secret: true }),
      rootdirectory: str(),
      secure: bool(true),
      skipverify: bool(false),
      v4auth: ignored('berth always signs with AWS Signature Version 4'),
      chunksize: int(10 * 1024 * 1024, 5 * 1024 * 1024),
      multipartcopythresholdsize: int(32 * 1024 * 1024, 0),
      multipartcopychunksize: int(32 * 1024 * 1024, 5 * 1024 * 1024),
      multipartcopymaxconcurrency: int(100, 1),
      encrypt: bool(false),
      keyid: str(),
      storageclass: str('STANDARD'),
      objectacl: str(),
      useragent: ignored('berth sends the AWS SDK user agent'),
      usedualstack: ignored('set regionendpoint to a dual-stack endpoint instead'),
      accelerate: ignored('set regionendpoint to an accelerate endpoint instead'),
      loglevel: ignored('S3 errors are logged at the registry log level'),
      // berth's own: at most this many parts per upload (S3 allows 10,000); parts grow to fit.
      maxuploadparts: int(10_000, 1),
      connecttimeout: dur('5s'),
      idletimeout: dur('30s'),
      operationtimeout: dur('60s'),
      maxattempts: int(5, 1),
    }),
    delete: obj({ enabled: bool(false) }),
    redirect: obj({ disable: bool(false) }),
    cache: obj({ blobdescriptor: ignored('berth keeps its own in-process caches'), blobdescriptorsize: ignored('berth keeps its own in-process caches') }),
    maintenance: obj({
      uploadpurging: obj({ enabled: bool(true), age: dur('168h'), interval: dur('24h'), dryrun: bool(false) }),
      readonly: obj({ enabled: bool(false) }),
    }),
  }),
  http: obj({
    addr: str(':5000'),
    net: str('tcp', { enum: ['tcp'] }),
    host: str(),
    secret: ignored('upload state lives in the store; there is nothing to sign'),
    relativeurls: bool(false),
    draintimeout: dur('30s'),
    headers: { kind: 'map', of: { kind: 'stringlist' } },
    tls: obj({ certificate: str(), key: str(), clientcas: { kind: 'stringlist' }, minimumtls: str(undefined, { enum: ['tls1.2', 'tls1.3'] }) }),
    // Unlike distribution, metrics are on by default: on the main listener, or only on debug.addr when set.
    debug: obj({ addr: str(), prometheus: obj({ enabled: bool(true), path: str('/metrics') }) }),
    http2: ignored('berth serves HTTP/1.1'),
  }),
  health: obj({
    storagedriver: ignored('/readyz checks the storage driver on every probe'),
  }),
  // Token verification (distribution's auth.token) or Basic auth from an htpasswd file (auth.htpasswd).
  auth: obj({
    token: obj({
      realm: str(),
      service: str(),
      issuer: str(),
      rootcertbundle: str(),
      jwks: str(),
      signingalgorithms: { kind: 'stringlist' },
      autoredirect: bool(false),
    }),
    htpasswd: obj({ realm: str(), path: str() }),
  }),
  // berth's token service: in-process with `serve`, or alone with `berth token-server`.
  tokenserver: obj({
    addr: str(':5001'),
    path: str('/token'),
    issuer: str(),
    key: str(),
    certificate: str(),
    expiration: dur('5m'),
    refreshexpiration: dur('720h'),
    users: str(),
    policy: str(),
    services: { kind: 'stringlist' },
    realm: str('berth'),
  }),
  // distribution's pull-through cache: the whole registry mirrors one upstream.
  proxy: obj(upstreamFields),
  notifications: obj({
    events: obj({ includereferences: bool(true) }),
    endpoints: {
      kind: 'list',
      of: obj({
        name: str(),
        disabled: bool(false),
        url: str(),
        // Often carry credentials (Authorization): masked by `config check`.
        headers: { kind: 'map', of: { kind: 'stringlist', secret: true } },
        timeout: dur('1s'),
        threshold: int(3, 1),
        backoff: dur('1s'),
        ignoredmediatypes: { kind: 'stringlist' },
        ignore: obj({ mediatypes: { kind: 'stringlist' }, actions: { kind: 'stringlist' } }),
        // berth's own: events held per endpoint while it is slow or down; more are dropped.
        queuesize: int(1000, 1),
      }),
    },
  }),
  berth: obj({
    // How long tag and link lookups are trusted before re-reading the store (other replicas may change them).
    linkcachettl: dur('1s'),
    manifestcachesize: int(64 * 1024 * 1024, 0),
    // Blob GETs from the filesystem leave with sendfile(2) when the addon of server/native is built.
    sendfile: bool(true),
    // S3 only: blob content cached on local disk (storage/blobcache.ts); off unless rootdirectory is set.
    blobcache: obj({ rootdirectory: str(''), maxsize: int(10 * 1024 ** 3, 1 << 20) }),
    // Online garbage collection (storage/GC.md): `berth gc` reads these too; flags override.
    gc: obj({
      enabled: bool(false), // scheduled runs inside `serve` (one collector across replicas: a lease in the store)
      interval: dur('24h'),
      minage: dur('1h'),
      deleteuntagged: bool(false),
      dryrun: bool(false),
      concurrency: int(16, 1),
      leasettl: dur('10m'),
      sweepbudget: dur('2m'),
      retention: {
        kind: 'list',
        of: obj({ repository: str(), keeplatest: int(undefined, 0), keeptags: str(), untaggedage: dur() }),
      },
    }),
    // GET /berth/v1/usage: du figures, recomputed at most every cachettl.
    usage: obj({ enabled: bool(true), cachettl: dur('5m') }),
    // Pull-through caches beside hosted repositories: names under `prefix` mirror the upstream.
    proxies: { kind: 'list', of: obj({ prefix: str(), ns: str(), ...upstreamFields }) },
    // The web UI at / (ui/): on unless turned off.
    ui: obj({ enabled: bool(true) }),
    // The indexes behind the catalog and the admin API (storage/INDEX.md).
    index: obj({ pollinterval: dur('1s'), snapshotinterval: dur('5m'), feedretention: dur('30m'), reconcileinterval: dur('1m') }),
  }),
};

export interface UpstreamConfig {
  remoteurl: string;
  username?: string;
  password?: string;
  ttl: number;
  expire: number;
  maxsize: number;
}

export interface Config {
  version: string;
  log: { level: 'error' | 'warn' | 'info' | 'debug'; fields?: Record<string, string>; accesslog: { disabled: boolean } };
  storage: {
    filesystem?: { rootdirectory: string };
    s3?: S3DriverOptions;
    delete: { enabled: boolean };
    redirect: { disable: boolean };
    maintenance: {
      uploadpurging: { enabled: boolean; age: number; interval: number; dryrun: boolean };
      readonly: { enabled: boolean };
    };
  };
  http: {
    addr: string;
    net: 'tcp';
    host?: string;
    relativeurls: boolean;
    draintimeout: number;
    headers?: Record<string, string[]>;
    tls: { certificate?: string; key?: string; clientcas?: string[]; minimumtls?: string };
    debug: { addr?: string; prometheus: { enabled: boolean; path: string } };
  };
  health: Record<string, never>;
  auth?: AuthConfig;
  tokenserver?: TokenServerConfig;
  proxy?: UpstreamConfig;
  notifications: {
    events: { includereferences: boolean };
    endpoints?: Array<{
      name: string;
      disabled: boolean;
      url: string;
      headers?: Record<string, string[]>;
      timeout: number;
      threshold: number;
      backoff: number;
      ignoredmediatypes?: string[];
      ignore: { mediatypes?: string[]; actions?: string[] };
      queuesize: number;
    }>;
  };
  berth: {
    linkcachettl: number;
    manifestcachesize: number;
    sendfile: boolean;
    blobcache: { rootdirectory: string; maxsize: number };
    gc: {
      enabled: boolean;
      interval: number;
      minage: number;
      deleteuntagged: boolean;
      dryrun: boolean;
      concurrency: number;
      leasettl: number;
      sweepbudget: number;
      retention?: { repository?: string; keeplatest?: number; keeptags?: string; untaggedage?: number }[];
    };
    usage: { enabled: boolean; cachettl: number };
    proxies?: (UpstreamConfig & { prefix: string; ns?: string })[];
    ui: { enabled: boolean };
    index: { pollinterval: number; snapshotinterval: number; feedretention: number; reconcileinterval: number };
  };
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
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

function coerce(field: Field, value: unknown, where: string, warnings: string[]): unknown {
  switch (field.kind) {
    case 'ignored':
      warnings.push(`${where} is accepted for compatibility with distribution but not used: ${field.why}`);
      return undefined;
    case 'string':
      if (typeof value === 'number' || typeof value === 'boolean') value = String(value);
      if (typeof value !== 'string') throw new ConfigError(`${where} must be a string`);
      if (field.enum && !field.enum.includes(value)) throw new ConfigError(`${where} must be one of ${field.enum.join(', ')} (got "${value}")`);
      return value;
    case 'int': {
      const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n)) throw new ConfigError(`${where} must be an integer`);
      if (field.min !== undefined && n < field.min) throw new ConfigError(`${where} must be at least ${field.min}`);
      return n;
    }
    case 'bool':
      if (value === 'true' || value === true) return true;
      if (value === 'false' || value === false) return false;
      throw new ConfigError(`${where} must be true or false`);
    case 'duration':
      return parseDuration(value, where);
    case 'stringlist':
      if (typeof value === 'string') return [value];
      if (!Array.isArray(value) || value.some((x) => typeof x !== 'string')) throw new ConfigError(`${where} must be a list of strings`);
      return value;
    case 'list':
      if (!Array.isArray(value)) throw new ConfigError(`${where} must be a list`);
      return value.map((x, i) => coerce(field.of, x, `${where}[${i}]`, warnings));
    case 'map': {
      if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${where} must be a mapping`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = coerce(field.of, v, `${where}.${k}`, warnings);
      return out;
    }
    case 'object': {
      if (value === null || value === undefined || value === '') value = {};
      if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${where} must be a mapping`);
      return coerceObject(field.fields, value as Record<string, unknown>, where, warnings);
    }
  }
}

function coerceObject(fields: Record<string, Field>, value: Record<string, unknown>, where: string, warnings: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const key = k.toLowerCase();
    const f = fields[key];
    const path = where ? `${where}.${key}` : key;
    if (!f) {
      const known = Object.keys(fields).join(', ');
      throw new ConfigError(`unknown configuration key "${path}"${known ? ` (known keys here: ${known})` : ''}`);
    }
    const c = coerce(f, v, path, warnings);
    if (c !== undefined) out[key] = c;
  }
  return out;
}

/** Fill in defaults for every object (present or not) and every scalar with a default. */
function applyDefaults(fields: Record<string, Field>, value: Record<string, unknown>, skip: (path: string) => boolean, where = ''): void {
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
    if (n === parts.length) return { keys: [key], field: f };
    if (f.kind === 'object') {
      const rest = envPath(f.fields, parts.slice(n));
      if (rest) return { keys: [key, ...rest.keys], field: rest.field };
    }
    if (f.kind === 'map') return { keys: [key, parts.slice(n).join('_').toLowerCase()], field: f.of };
  }
  return undefined;
}

export interface LoadedConfig {
  config: Config;
  warnings: string[];
}

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
    }
    try {
      raw = (YAML.parse(text) ?? {}) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`config file ${file} is not valid YAML/JSON: ${(e as Error).message}`);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`config file ${file} must hold a mapping`);
  }
  return fromObject(raw, env);
}

export function fromObject(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const warnings: string[] = [];
  const config = coerceObject(SCHEMA, raw, '', warnings);
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('REGISTRY_') || value === undefined) continue;
    const found = envPath(SCHEMA, name.slice('REGISTRY_'.length).split('_'));
    if (!found) throw new ConfigError(`environment variable ${name} does not name a configuration key`);
    const where = `${name} (${found.keys.join('.')})`;
    let v: unknown = value;
    if (found.field.kind === 'object' || found.field.kind === 'map' || found.field.kind === 'list') v = YAML.parse(value);
    const c = coerce(found.field, v, where, warnings);
    if (c !== undefined) setPath(config, found.keys, c);
  }
  const storage = (config.storage ?? {}) as Record<string, unknown>;
  const drivers = STORAGE_DRIVERS.filter((d) => storage[d] !== undefined);
  if (drivers.length > 1) {
    throw new ConfigError(`storage: only one storage driver may be configured, found ${drivers.join(' and ')}`);
  }
  if (drivers.length === 0) storage.filesystem = { rootdirectory: './data' };
  config.storage = storage;
  // Defaults for drivers apply only to the one that is configured; optional sections stay absent unless given.
  const present = (p: string) => p.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], config) !== undefined;
  applyDefaults(
    SCHEMA,
    config,
    (p) => STORAGE_DRIVERS.some((d) => p === `storage.${d}` && storage[d] === undefined) || (OPTIONAL_SECTIONS.includes(p) && !present(p)),
  );
  const fsConf = storage.filesystem as { rootdirectory?: string } | undefined;
  if (fsConf && !fsConf.rootdirectory) throw new ConfigError('storage.filesystem.rootdirectory is required');
  const s3 = storage.s3 as Partial<S3DriverOptions> | undefined;
  if (s3) {
    for (const k of ['bucket', 'region'] as const) if (!s3[k]) throw new ConfigError(`storage.s3.${k} is required`);
    if (Boolean(s3.accesskey) !== Boolean(s3.secretkey)) {
      throw new ConfigError('storage.s3: set both accesskey and secretkey, or neither (to use the AWS credential chain)');
    }
    if (s3.maxuploadparts! > 10_000) throw new ConfigError('storage.s3.maxuploadparts must be at most 10000');
  }
  const berth = config.berth as Config['berth'];
  if (berth.blobcache.rootdirectory && !s3) {
    throw new ConfigError('berth.blobcache keeps S3 blobs on local disk; with storage.filesystem they are local already');
  }
  const idx = berth.index;
  if (idx.pollinterval < 100 || idx.reconcileinterval < 100) throw new ConfigError('berth.index.pollinterval and reconcileinterval must be at least 100ms');
  // A replica starting from a snapshot replays the feed since it: the feed must outlive a snapshot.
  if (idx.feedretention < idx.snapshotinterval + 120_000) throw new ConfigError('berth.index.feedretention must exceed berth.index.snapshotinterval by at least 2m');
  checkEndpoints(config as unknown as Config);
  checkProxies(config as unknown as Config);
  return { config: config as unknown as Config, warnings };
}

function checkEndpoints(config: Config): void {
  const names = new Set<string>();
  (config.notifications.endpoints ?? []).forEach((e, i) => {
    const where = `notifications.endpoints[${i}]`;
    if (!e.name) throw new ConfigError(`${where}.name is required`);
    if (names.has(e.name)) throw new ConfigError(`${where}.name "${e.name}" is used twice`);
    names.add(e.name);
    let url: URL;
    try {
      url = new URL(e.url ?? '');
    } catch {
      throw new ConfigError(`${where}.url must be an http(s) URL (got "${e.url ?? ''}")`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${where}.url must be an http(s) URL (got "${e.url}")`);
  });
}

function httpURL(v: string | undefined, where: string): URL {
  let url: URL | undefined;
  try {
    url = new URL(v ?? '');
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new ConfigError(`${where} must be an http(s) URL (got "${v ?? ''}")`);
  return url;
}

/** Is `name` a repository of the pull-through cache with this prefix ('' for distribution's `proxy:`: every name)? */
export const inPrefix = (prefix: string, name: string) => prefix === '' || name.startsWith(`${prefix}/`);

/** Repositories that are pull-through caches (see inPrefix). */
export function cachedRepositories(config: Config): (name: string) => boolean {
  const prefixes = config.proxy ? [''] : (config.berth.proxies ?? []).map((p) => p.prefix);
  return (name) => prefixes.some((p) => inPrefix(p, name));
}

function checkProxies(config: Config): void {
  if (config.proxy) {
    httpURL(config.proxy.remoteurl, 'proxy.remoteurl');
    if (config.berth.proxies?.length) throw new ConfigError('proxy makes the whole registry a mirror of one upstream; use berth.proxies alone to mirror several beside hosted repositories');
  }
  const seen = new Map<string, string>();
  (config.berth.proxies ?? []).forEach((p, i) => {
    const where = `berth.proxies[${i}]`;
    httpURL(p.remoteurl, `${where}.remoteurl`);
    if (!p.prefix || !isValidName(p.prefix)) throw new ConfigError(`${where}.prefix must be a repository name such as "dockerhub" (got "${p.prefix ?? ''}")`);
    for (const [other, w] of seen) {
      if (other === p.prefix || other.startsWith(`${p.prefix}/`) || p.prefix.startsWith(`${other}/`)) {
        throw new ConfigError(`${where}.prefix "${p.prefix}" overlaps ${w}'s "${other}"`);
      }
    }
    seen.set(p.prefix, where);
    if (p.ns !== undefined && config.berth.proxies!.some((q, j) => j < i && q.ns === p.ns)) throw new ConfigError(`${where}.ns "${p.ns}" is used twice`);
  });
}

const MASK = '********';

/** The effective settings with secrets masked, for `berth config check`. */
export function maskSecrets(value: unknown, fields: Record<string, Field> = SCHEMA): unknown {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = maskValue(fields[k], v);
  return out;
}

function maskValue(f: Field | undefined, v: unknown): unknown {
  if (!f || v === undefined || v === null) return v;
  switch (f.kind) {
    case 'string':
      return f.secret && v ? MASK : v;
    case 'stringlist':
      return f.secret && Array.isArray(v) ? v.map(() => MASK) : v;
    case 'object':
      return maskSecrets(v, f.fields);
    case 'list':
      return Array.isArray(v) ? v.map((x) => maskValue(f.of, x)) : v;
    case 'map':
      return typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, maskValue(f.of, x)])) : v;
    default:
      return v;
  }
}

/** Split "host:port" / ":port" into what net.Server.listen takes. */
export function parseAddr(addr: string): { host?: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr.trim());
  if (!m) throw new ConfigError(`http.addr "${addr}" must be HOST:PORT or :PORT`);
  const host = m[1] ?? m[2];
  return { host: host || undefined, port: Number(m[3]) };
}
