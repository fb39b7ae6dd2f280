// What `serve` checks before it starts, beyond the config's keys: the files the
// config names exist and parse (TLS, htpasswd, token keys, users, policy), the
// retention policies compile, and the token realm points where clients can get
// tokens. `berth config check` runs the same, so it refuses what serve refuses.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { setupAuth } from '../auth/index';
import { parseHtpasswd } from '../auth/htpasswd';
import { parseCertificates } from '../auth/keys';
import { readPolicy } from '../auth/policy';
import { parseUsers } from '../auth/users';
import type { StorageDriver } from '../storage/driver';
import { probeStore } from '../storage/probe';
import { parseAddr, type Config } from './config';
import type { Logger } from './log';
import { retentionPolicies } from './maintenance';
import { ConfigError, type Findings } from './schema';

function read(file: string, where: string, f: Findings): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    f.errors.push(`${where}: cannot read ${file}: ${(e as Error).message}`);
    return undefined;
  }
}

function checkCertificates(file: string, where: string, f: Findings): void {
  const text = read(file, where, f);
  if (text === undefined) return;
  try {
    if (!parseCertificates(text).length) f.errors.push(`${where}: no PEM certificate in ${file}`);
  } catch (e) {
    f.errors.push(`${where}: ${file} holds a certificate that does not parse: ${(e as Error).message}`);
  }
}

function checkTls(t: Config['http']['tls'], f: Findings): void {
  if (Boolean(t.certificate) !== Boolean(t.key)) {
    f.errors.push('http.tls: set both certificate and key (or neither, to serve plain HTTP)');
  } else if (t.certificate && t.key) {
    const cert = read(t.certificate, 'http.tls.certificate', f);
    const key = read(t.key, 'http.tls.key', f);
    if (cert !== undefined && key !== undefined) {
      try {
        tls.createSecureContext({ cert, key });
      } catch (e) {
        f.errors.push(`http.tls: ${t.certificate} and ${t.key} are not a usable certificate and key: ${(e as Error).message}`);
      }
    }
  }
  (t.clientcas ?? []).forEach((file, i) => checkCertificates(file, `http.tls.clientcas[${i}]`, f));
}

function checkTokenServer(ts: NonNullable<Config['tokenserver']>, f: Findings): void {
  for (const k of ['issuer', 'key', 'users', 'policy'] as const) if (!ts[k]) f.errors.push(`tokenserver.${k} is required`);
  if (!ts.services?.length) f.errors.push('tokenserver.services: list at least one service (registry) name');
  if ((ts.expiration ?? 0) < 60_000) f.errors.push('tokenserver.expiration must be at least 60s');
  const key = ts.key ? read(ts.key, 'tokenserver.key', f) : undefined;
  if (key !== undefined) {
    try {
      crypto.createPrivateKey(key);
    } catch (e) {
      f.errors.push(`tokenserver.key: ${ts.key} is not a PEM private key: ${(e as Error).message}`);
    }
  }
  if (ts.certificate) checkCertificates(ts.certificate, 'tokenserver.certificate', f);
  if (ts.users) {
    if (!fs.existsSync(ts.users)) {
      f.warnings.push(`tokenserver.users: ${ts.users} does not exist yet: nobody can log in until \`berth user add\` creates it`);
    } else {
      const text = read(ts.users, 'tokenserver.users', f);
      if (text !== undefined) {
        try {
          parseUsers(text);
        } catch (e) {
          f.errors.push(`tokenserver.users: ${ts.users}: ${(e as Error).message}`);
        }
      }
    }
  }
  const policy = ts.policy ? read(ts.policy, 'tokenserver.policy', f) : undefined;
  if (policy !== undefined) for (const e of readPolicy(policy).errors) f.errors.push(`tokenserver.policy: ${ts.policy}: ${e}`);
}

function checkAuth(config: Config, f: Findings): void {
  const { auth, tokenserver } = config;
  if (auth?.token && auth.htpasswd) f.errors.push('auth: configure either auth.token or auth.htpasswd, not both');
  if (auth?.token) {
    for (const k of ['realm', 'service', 'issuer'] as const) if (!auth.token[k]) f.errors.push(`auth.token.${k} is required`);
    if (auth.token.rootcertbundle) checkCertificates(auth.token.rootcertbundle, 'auth.token.rootcertbundle', f);
    if (auth.token.jwks) read(auth.token.jwks, 'auth.token.jwks', f);
  }
  if (auth?.htpasswd) {
    for (const k of ['realm', 'path'] as const) if (!auth.htpasswd[k]) f.errors.push(`auth.htpasswd.${k} is required`);
    const text = auth.htpasswd.path ? read(auth.htpasswd.path, 'auth.htpasswd.path', f) : undefined;
    if (text !== undefined && parseHtpasswd(text, { warn: (m) => f.warnings.push(`auth.htpasswd: ${m}`) }, auth.htpasswd.path).size === 0) {
      f.warnings.push(`auth.htpasswd: ${auth.htpasswd.path} has no usable (bcrypt) entry: nobody can log in`);
    }
  }
  if (tokenserver) checkTokenServer(tokenserver, f);
  if (f.errors.length) return;
  // Whatever else building the auth would refuse (e.g. a JWKS that is not one), exactly as serve builds it.
  try {
    setupAuth(config, { warn: (m) => f.warnings.push(m) });
  } catch (e) {
    f.errors.push((e as Error).message);
  }
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** A realm that sends clients to another port of this host than the one the in-process token service answers on. */
function checkRealm(config: Config, f: Findings): void {
  const token = config.auth?.token;
  const ts = config.tokenserver;
  if (!token?.realm || token.autoredirect) return;
  let realm: URL;
  try {
    realm = new URL(token.realm);
  } catch {
    f.errors.push(`auth.token.realm must be a URL clients can reach (got "${token.realm}"), or set auth.token.autoredirect: true`);
    return;
  }
  if (!ts?.services?.includes(token.service)) return; // a token service elsewhere: its port is its own
  const listen = parseAddr(config.http.addr);
  const port = Number(realm.port || (realm.protocol === 'https:' ? 443 : 80));
  const here = LOOPBACK.has(realm.hostname) || realm.hostname === listen.host;
  const hint = 'set auth.token.autoredirect: true to build the realm from each request';
  if (here && port !== listen.port) {
    f.warnings.push(`auth.token.realm ${token.realm} points at port ${port}, but berth listens on ${listen.port} and serves the tokens itself: clients will not get tokens (${hint})`);
  } else if (here && realm.pathname !== ts.path) {
    f.warnings.push(`auth.token.realm ${token.realm} has the path ${realm.pathname}, but the token service answers at ${ts.path} (tokenserver.path)`);
  }
}

/** Every error serve would stop at, and warnings worth reading at start. */
export function preflight(config: Config): Findings {
  const f: Findings = { errors: [], warnings: [] };
  checkTls(config.http.tls, f);
  checkAuth(config, f);
  checkRealm(config, f);
  try {
    retentionPolicies(config);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    f.errors.push(...e.errors);
  }
  return f;
}

/** The store's place, for messages: a directory, or s3://bucket/prefix. */
export function storeLocation(config: Config): string {
  const { s3, filesystem } = config.storage;
  return s3 ? `s3://${s3.bucket}/${(s3.rootdirectory ?? '').replace(/^\/+/, '')}` : path.resolve(filesystem!.rootdirectory);
}

/** Where the store is, what auth guards it, whether it takes deletes: for the start-up log line and messages. */
export function storeSummary(config: Config): Record<string, unknown> {
  const { storage, auth, tokenserver } = config;
  const where = storage.s3
    ? { storage: 's3', bucket: storage.s3.bucket, rootdirectory: storage.s3.rootdirectory || '/', endpoint: storage.s3.regionendpoint || `AWS ${storage.s3.region}` }
    : { storage: 'filesystem', rootdirectory: path.resolve(storage.filesystem!.rootdirectory) };
  const mode = auth?.token ? 'token' : auth?.htpasswd ? 'htpasswd' : 'none (anyone may pull, push and delete)';
  return {
    ...where,
    auth: mode,
    ...(tokenserver && { tokenService: tokenserver.path }),
    deletes: storage.delete.enabled,
    readOnly: storage.maintenance.readonly.enabled,
  };
}

/** Bounds the start-up probe: a store that takes longer for a small write is not one to serve from. */
const PROBE_TIMEOUT_MS = 10_000;

/**
 * Refuse to start on a store berth cannot write (or, read-only, cannot read), with
 * a message that says what to do. An S3 store that is down or slow only warns: the
 * registry starts not ready and recovers when the store does.
 */
export async function checkStore(driver: StorageDriver, config: Config, logger: Logger): Promise<void> {
  const readOnly = config.storage.maintenance.readonly.enabled;
  const where = storeLocation(config);
  const s3 = Boolean(config.storage.s3);
  try {
    await probeStore(driver, { write: !readOnly, timeoutMs: PROBE_TIMEOUT_MS });
  } catch (e) {
    const { code, message } = e as Error & { code?: string };
    if (s3 && (code === 'TIMEOUT' || code === 'StorageUnavailableError')) {
      logger.warn('store not answering at start; /readyz reports it until it does', { store: where, error: message });
      return;
    }
    const uid = process.getuid?.();
    const fix = readOnly
      ? 'check that the store exists and berth may read it'
      : `give berth (uid ${uid}) write access to it, or set storage.maintenance.readonly.enabled: true to serve it read-only`;
    if (code === 'TIMEOUT') {
      throw new Error(`the store at ${where} did not answer a small ${readOnly ? 'read' : 'write'} within ${PROBE_TIMEOUT_MS / 1000}s: a registry cannot be served from it (is it under /proc, or a mount that hangs?)`);
    }
    throw new Error(`the store at ${where} cannot be ${readOnly ? 'read' : 'written'}: ${message} (${fix})`);
  }
}
