// Configuration: one typed object from a YAML/JSON file in the format of CNCF
// distribution's config.yml, with REGISTRY_<PATH>_<KEY> environment overrides.
// A declarative schema drives validation, defaults and the env mapping, so a
// new section is one entry in SCHEMA plus its type in Config.
import fs from 'node:fs';
import YAML from 'yaml';
import type { AuthConfig, TokenServerConfig } from '../auth/config';
import type { S3DriverOptions } from '../storage/drivers/s3';
import type { UrlPolicy } from '../storage/manifest';
import { checkValues } from './config-checks';
import { applyDefaults, applyEnv, bool, coerceObject, ConfigError, dur, ignored, int, obj, printable, str, type Field, type Findings } from './schema';

export { ConfigError, formatDuration, parseDuration, type Field } from './schema';

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
    inmemory: ignored('berth has no in-memory driver; it stores on the filesystem (storage.filesystem.rootdirectory, default ./data)'),
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
    addr: str(':5000', { check: addrProblem }),
    net: str('tcp', { enum: ['tcp'] }),
    // The path berth is served under behind a proxy (distribution's "/path/"); requests there are served as at /.
    prefix: str(undefined, { check: (p) => (p.startsWith('/') ? undefined : 'must be a path starting with "/", e.g. /registry/') }),
    host: str(),
    secret: ignored('upload state lives in the store; there is nothing to sign'),
    relativeurls: bool(false),
    draintimeout: dur('30s'),
    headers: { kind: 'map', of: { kind: 'stringlist' } },
    tls: obj({ certificate: str(), key: str(), clientcas: { kind: 'stringlist' }, minimumtls: str(undefined, { enum: ['tls1.2', 'tls1.3'] }) }),
    // Unlike distribution, metrics are on by default: on the main listener, or only on debug.addr when set.
    debug: obj({ addr: str(undefined, { check: addrProblem }), prometheus: obj({ enabled: bool(true), path: str('/metrics') }) }),
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
    addr: str(':5001', { check: addrProblem }),
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
  // distribution's manifest validation: URLs of (foreign) layers must match an allow pattern, if any, and no deny pattern.
  validation: obj({
    enabled: bool(),
    disabled: bool(false),
    manifests: obj({
      urls: obj({ allow: { kind: 'stringlist' }, deny: { kind: 'stringlist' } }),
      indexes: ignored('berth always requires every child of an index to be in the repository'),
    }),
  }),
  redis: ignored('berth caches in process memory (berth.linkcachettl, berth.manifestcachesize); no Redis is needed'),
  middleware: ignored('berth has no middleware plugins; blob GETs on S3 redirect to presigned URLs unless storage.redirect.disable'),
  reporting: ignored('berth reports through its JSON logs and Prometheus metrics (http.debug.prometheus)'),
  compatibility: ignored('berth serves no schema 1 manifests, so there is nothing to sign or convert'),
  berth: obj({
    // How long tag and link lookups are trusted before re-reading the store (other replicas may change them).
    linkcachettl: dur('1s'),
    manifestcachesize: int(8 * 1024 * 1024, 0),
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
    prefix?: string;
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
  validation: { enabled?: boolean; disabled: boolean; manifests: { urls: { allow?: string[]; deny?: string[] } } };
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

export interface LoadedConfig {
  config: Config;
  warnings: string[];
}

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const { config, warnings, errors } = readConfig(file, env);
  if (errors.length) throw new ConfigError(errors);
  return { config, warnings };
}

/**
 * The config with every problem collected, not thrown: keys and values that are
 * wrong are left out (their defaults apply), so further checks can still run.
 * A file that cannot be read or parsed is thrown.
 */
export function readConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): LoadedConfig & { errors: string[] } {
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
  return collect(raw, env);
}

export function fromObject(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const { config, warnings, errors } = collect(raw, env);
  if (errors.length) throw new ConfigError(errors);
  return { config, warnings };
}

function collect(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): LoadedConfig & Findings {
  const f: Findings = { errors: [], warnings: [] };
  const config = coerceObject(SCHEMA, raw, '', f);
  applyEnv(SCHEMA, config, env, (text) => YAML.parse(text), f);
  const storage = (config.storage ?? {}) as Record<string, unknown>;
  const drivers = STORAGE_DRIVERS.filter((d) => storage[d] !== undefined);
  if (drivers.length > 1) f.errors.push(`storage: only one storage driver may be configured, found ${drivers.join(' and ')}`);
  if (drivers.length === 0) storage.filesystem = { rootdirectory: './data' };
  config.storage = storage;
  // Defaults for drivers apply only to the one that is configured; optional sections stay absent unless given.
  const present = (p: string) => p.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], config) !== undefined;
  applyDefaults(
    SCHEMA,
    config,
    (p) => STORAGE_DRIVERS.some((d) => p === `storage.${d}` && storage[d] === undefined) || (OPTIONAL_SECTIONS.includes(p) && !present(p)),
  );
  checkValues(config as unknown as Config, f.errors);
  return { config: config as unknown as Config, ...f };
}

/** Is `name` a repository of the pull-through cache with this prefix ('' for distribution's `proxy:`: every name)? */
export const inPrefix = (prefix: string, name: string) => prefix === '' || name.startsWith(`${prefix}/`);

/** Repositories that are pull-through caches (see inPrefix). */
export function cachedRepositories(config: Config): (name: string) => boolean {
  const prefixes = config.proxy ? [''] : (config.berth.proxies ?? []).map((p) => p.prefix);
  return (name) => prefixes.some((p) => inPrefix(p, name));
}

/** The effective settings for `berth config check`: secrets masked, durations as written ("30s"). */
export function maskSecrets(value: unknown, fields: Record<string, Field> = SCHEMA): unknown {
  return printable(value, fields);
}

/** Split "host:port" / ":port" into what net.Server.listen takes. */
export function parseAddr(addr: string): { host?: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr.trim());
  if (!m || Number(m[3]) > 65535) throw new ConfigError(`"${addr}" must be HOST:PORT or :PORT (e.g. :5000, 127.0.0.1:5000)`);
  const host = m[1] ?? m[2];
  return { host: host || undefined, port: Number(m[3]) };
}

/** A schema check for listen addresses: what serve would refuse is refused when the config is loaded. */
function addrProblem(addr: string): string | undefined {
  try {
    parseAddr(addr);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** validation.manifests.urls as the store applies it; none when validation is off or no pattern is set (berth's default accepts every URL). */
export function layerUrlPolicy(config: Config): UrlPolicy | undefined {
  const v = config.validation;
  const { allow = [], deny = [] } = v.manifests.urls;
  if (v.disabled || v.enabled === false || (!allow.length && !deny.length)) return undefined;
  return { allow: allow.map((re) => new RegExp(re)), deny: deny.map((re) => new RegExp(re)) };
}
