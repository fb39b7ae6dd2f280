// The UI's session endpoints and the admin API's auth on real berth processes:
// sign-in against the in-process token service, a token service in another
// process and an htpasswd file; the cookie's attributes, CSRF and Origin
// checks, expired and forged sessions, renewal, sign-out, throttling.
import fs from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import jwt from 'jsonwebtoken';
import t from 'tap';
import { jwkThumbprint } from '../auth/keys';
import { addUser, basic, TEST_POLICY, writeKey } from './helpers/auth';
import { type Berth, CLI, startBerth, tempDir } from './helpers/berth';
import { waitFor } from './helpers/ops-client';
import { freePort, launch } from './helpers/process';

const SERVICE = 'berth-ui';
const ISSUER = 'berth-ui-issuer';
const dir = tempDir();
const signer = writeKey(dir, 'signer', 'ec');
const usersFile = path.join(dir, 'users.yml');
const policyFile = path.join(dir, 'policy.yml');
fs.writeFileSync(policyFile, TEST_POLICY);
const ROBOT_SECRET = 'r0b0t-secret-of-enough-length-for-ci-0123456789';

interface Reply {
  status: number;
  body: Record<string, unknown> & { errors?: { code: string }[] };
  headers: Headers;
  /** The berth_session cookie set by this answer: its value and attributes. */
  cookie?: { value: string; attrs: string[] };
}

interface Call {
  method?: string;
  cookie?: string;
  csrf?: string;
  origin?: string;
  site?: string;
  authorization?: string;
  json?: unknown;
  contentType?: string;
}

function client(b: Berth) {
  return async (p: string, c: Call = {}): Promise<Reply> => {
    const headers: Record<string, string> = {};
    if (c.cookie) headers.cookie = `berth_session=${c.cookie}`;
    if (c.csrf) headers['x-berth-csrf'] = c.csrf;
    if (c.origin) headers.origin = c.origin;
    if (c.site) headers['sec-fetch-site'] = c.site;
    if (c.authorization) headers.authorization = c.authorization;
    if (c.json !== undefined) headers['content-type'] = c.contentType ?? 'application/json';
    const res = await fetch(b.url + p, { method: c.method ?? 'GET', headers, body: c.json === undefined ? undefined : JSON.stringify(c.json) });
    const text = await res.text();
    const set = res.headers.getSetCookie().find((s) => s.startsWith('berth_session='));
    const [pair, ...attrs] = set ? set.split(/;\s*/) : [];
    return {
      status: res.status,
      body: text ? JSON.parse(text) : {},
      headers: res.headers,
      cookie: set ? { value: pair.slice('berth_session='.length), attrs } : undefined,
    };
  };
}

const login = (call: ReturnType<typeof client>, username: string, password: string, extra: Call = {}) =>
  call('/berth/v1/session', { method: 'POST', json: { username, password }, ...extra });

function tokenConfig(port: number, extra: string[] = []): string {
  const file = path.join(dir, `config-${port}.yml`);
  const lines = ['version: 0.1', 'auth:', '  token:', `    realm: http://127.0.0.1:${port}/token`, `    service: ${SERVICE}`, `    issuer: ${ISSUER}`];
  lines.push('tokenserver:', `  issuer: ${ISSUER}`, `  key: ${signer.keyPath}`, `  users: ${usersFile}`, `  policy: ${policyFile}`, `  services: [${SERVICE}]`, ...extra, '');
  fs.writeFileSync(file, lines.join('\n'));
  return file;
}

/** A session token as the in-process token service would sign it, with chosen times. */
function forge(sub: string, exp: number, iat = exp - 60, key = signer.privateKey): string {
  return jwt.sign({ iss: ISSUER, sub, aud: SERVICE, exp, iat, nbf: iat, access: [] }, key, { algorithm: 'ES256', keyid: jwkThumbprint(signer.publicKey) });
}

const code = (r: Reply) => r.body.errors?.[0]?.code;

t.before(async () => {
  await addUser(usersFile, 'alice', 'alice-pw1', ['dev']);
  await addUser(usersFile, 'bob', 'bob-pw12');
  await addUser(usersFile, 'victim', 'victim-pw1');
  await addUser(usersFile, 'ci-bot', ROBOT_SECRET, ['ci'], true);
});

t.test('token auth with the token service in the process', async (t) => {
  const port = await freePort();
  const b = await startBerth({ port, config: tokenConfig(port, ['  expiration: 60s']) });
  t.teardown(() => b.stop());
  const call = client(b);
  const origin = b.url;

  await t.test('anonymous', async (t) => {
    const r = await call('/berth/v1/session');
    t.equal(r.status, 200);
    t.same(r.body, { user: null, auth: 'token', deletesEnabled: true, host: b.host });
    t.equal(r.headers.get('cache-control'), 'no-store');
    t.notOk(r.cookie);
  });

  await t.test('bad credentials', async (t) => {
    for (const [u, p] of [['alice', 'wrong'], ['nobody', 'alice-pw1'], ['ci-bot', 'not-the-secret']]) {
      const r = await login(call, u, p, { origin });
      t.equal(r.status, 401, `${u}: 401`);
      t.equal(code(r), 'UNAUTHORIZED');
      t.notOk(r.cookie, 'no cookie');
      t.notOk(r.headers.get('www-authenticate'), 'no Basic challenge (a browser would pop up its own dialog)');
    }
    t.equal((await login(call, 'alice', 'alice-pw1', { contentType: 'text/plain' })).status, 415, 'JSON only (a form post from another site cannot send it)');
    t.equal((await call('/berth/v1/session', { method: 'POST', json: { username: 'alice' } })).status, 400, 'password missing');
    t.equal((await call('/berth/v1/session', { method: 'POST', json: 'x'.repeat(10_000) })).status, 413, 'oversized body');
  });

  await t.test('sign-in from another origin is refused', async (t) => {
    const r = await login(call, 'alice', 'alice-pw1', { origin: 'http://evil.example' });
    t.equal(r.status, 403);
    t.equal(code(r), 'DENIED');
    t.notOk(r.cookie);
    t.equal((await login(call, 'alice', 'alice-pw1', { site: 'cross-site' })).status, 403, 'Sec-Fetch-Site: cross-site');
    t.equal((await login(call, 'alice', 'alice-pw1', { origin: 'null' })).status, 403, 'Origin: null');
  });

  let cookie = '';
  let csrf = '';
  await t.test('sign-in sets a short-lived, HttpOnly, SameSite=Strict cookie for /berth only', async (t) => {
    const r = await login(call, 'alice', 'alice-pw1', { origin });
    t.equal(r.status, 200);
    t.equal(r.body.user, 'alice');
    t.equal(r.body.auth, 'token');
    t.type(r.body.csrf, 'string');
    t.ok(r.cookie);
    const attrs = r.cookie!.attrs;
    t.ok(attrs.includes('HttpOnly'));
    t.ok(attrs.includes('SameSite=Strict'));
    t.ok(attrs.includes('Path=/berth'));
    t.notOk(attrs.includes('Secure'), 'not over plain HTTP');
    const maxAge = Number(attrs.find((a) => a.startsWith('Max-Age='))?.slice(8));
    t.ok(maxAge > 0 && maxAge <= 60, `Max-Age ${maxAge} within the token lifetime`);
    const claims = jwt.decode(r.cookie!.value) as jwt.JwtPayload;
    t.equal(claims.sub, 'alice');
    t.same(claims.access, [], 'the token lists no access: the policy decides each request');
    t.notOk((jwt.decode(r.cookie!.value, { complete: true })!.header as { x5c?: unknown }).x5c, 'no certificate chain in a cookie');
    cookie = r.cookie!.value;
    csrf = r.body.csrf as string;
    const again = await call('/berth/v1/session', { cookie });
    t.same(again.body, { user: 'alice', auth: 'token', deletesEnabled: true, host: b.host, csrf });
  });

  await t.test('a robot signs in with its secret', async (t) => {
    const r = await login(call, 'ci-bot', ROBOT_SECRET);
    t.equal(r.status, 200);
    t.equal(r.body.user, 'ci-bot');
  });

  await t.test('the session cookie is no key to /v2', async (t) => {
    const res = await fetch(`${b.url}/v2/alice/app/tags/list`, { headers: { authorization: `Bearer ${cookie}` } });
    t.equal(res.status, 401, 'its token grants nothing there');
  });

  await t.test('CSRF: state-changing requests with the cookie need the token and this origin', async (t) => {
    const missing = await call('/berth/v1/session', { method: 'DELETE', cookie });
    t.equal(missing.status, 403);
    t.equal(code(missing), 'DENIED');
    t.notOk(missing.cookie, 'still signed in');
    t.equal((await call('/berth/v1/session', { method: 'DELETE', cookie, csrf: csrf.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) })).status, 403, 'wrong token');
    t.equal((await call('/berth/v1/session', { method: 'DELETE', cookie, csrf: 'short' })).status, 403, 'malformed token');
    t.equal((await call('/berth/v1/session', { method: 'DELETE', cookie, csrf, origin: 'http://evil.example' })).status, 403, 'right token, other origin');
    t.equal((await call('/berth/v1/repositories/alice/app', { method: 'DELETE', cookie })).status, 403, 'on data endpoints too');
    const other = await login(call, 'bob', 'bob-pw12');
    t.equal((await call('/berth/v1/session', { method: 'DELETE', cookie, csrf: other.body.csrf as string })).status, 403, "another session's token");
  });

  await t.test('an Authorization header works as on /v2; a bad one is refused', async (t) => {
    const tok = await fetch(`${b.url}/token?service=${SERVICE}`, { headers: { authorization: basic('alice', 'alice-pw1') } });
    const { token } = (await tok.json()) as { token: string };
    t.equal((await call('/berth/v1/session', { authorization: `Bearer ${token}` })).status, 200);
    const bad = await call('/berth/v1/session', { authorization: 'Bearer not.a.token' });
    t.equal(bad.status, 401);
    t.match(bad.headers.get('www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="${SERVICE}"`);
  });

  await t.test('expired, forged and foreign sessions end', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const stranger = writeKey(dir, 'stranger', 'ec');
    const cases: [string, string][] = [
      ['expired', forge('alice', now - 120)],
      ['signed by another key', forge('alice', now + 60, now, stranger.privateKey)],
      ['tampered', cookie.slice(0, -4) + (cookie.endsWith('AAAA') ? 'BBBB' : 'AAAA')],
      ['anonymous token', forge('', now + 60)],
      ['garbage', 'garbage'],
    ];
    for (const [what, value] of cases) {
      const s = await call('/berth/v1/session', { cookie: value });
      t.equal(s.status, 200, `${what}: the session endpoint answers`);
      t.equal(s.body.user, null, `${what}: signed out`);
      t.ok(s.cookie?.attrs.includes('Max-Age=0'), `${what}: the cookie is cleared`);
      const data = await call('/berth/v1/repositories', { cookie: value });
      t.equal(data.status, 401, `${what}: data endpoints say the session is over`);
      t.equal(code(data), 'UNAUTHORIZED');
    }
  });

  await t.test('an active session is renewed past half its lifetime', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const old = forge('alice', now + 20, now - 40);
    const r = await call('/berth/v1/session', { cookie: old });
    t.equal(r.body.user, 'alice');
    t.ok(r.cookie, 'a new cookie');
    const exp = (jwt.decode(r.cookie!.value) as jwt.JwtPayload).exp!;
    t.ok(exp >= now + 55, 'with a full lifetime');
    t.not(r.body.csrf, undefined);
    t.equal(r.body.csrf, (await call('/berth/v1/session', { cookie: r.cookie!.value })).body.csrf, 'the CSRF token answered is the new cookie’s');
    const fresh = await call('/berth/v1/session', { cookie });
    t.notOk(fresh.cookie, 'a young session is left alone');
  });

  await t.test('sign-out clears the cookie', async (t) => {
    const r = await call('/berth/v1/session', { method: 'DELETE', cookie, csrf, origin });
    t.equal(r.status, 204);
    t.ok(r.cookie?.attrs.includes('Max-Age=0'));
    t.equal(r.cookie?.value, '');
    t.equal((await call('/berth/v1/session', { method: 'DELETE' })).status, 204, 'without a session too');
  });

  await t.test('failed sign-ins are held back', async (t) => {
    for (let i = 0; i < 5; i++) t.equal((await login(call, 'victim', `guess-${i}`)).status, 401);
    const start = Date.now();
    t.equal((await login(call, 'victim', 'guess-6')).status, 401);
    t.ok(Date.now() - start >= 240, `the sixth failure waited ${Date.now() - start} ms`);
    t.equal((await login(call, 'victim', 'victim-pw1')).status, 200, 'the right password still works');
  });
});

t.test('a token service in another process', async (t) => {
  const tsPort = await freePort();
  const tsConfig = path.join(dir, 'token-server.yml');
  fs.writeFileSync(
    tsConfig,
    ['tokenserver:', `  addr: 127.0.0.1:${tsPort}`, `  issuer: ${ISSUER}`, `  key: ${signer.keyPath}`, `  users: ${usersFile}`, `  policy: ${policyFile}`, `  services: [${SERVICE}]`, ''].join('\n'),
  );
  const jwks = path.join(dir, 'jwks.json');
  fs.writeFileSync(jwks, JSON.stringify({ keys: [{ ...signer.publicKey.export({ format: 'jwk' }), kid: jwkThumbprint(signer.publicKey), use: 'sig' }] }));
  const ts = await launch({ cmd: process.execPath, args: [CLI, 'token-server', '--config', tsConfig], port: tsPort, readyPath: '/healthz', env: { ...process.env, REGISTRY_LOG_LEVEL: 'error' } });
  t.teardown(() => ts.stop());
  const b = await startBerth({
    env: { REGISTRY_AUTH_TOKEN_REALM: `${ts.url}/token`, REGISTRY_AUTH_TOKEN_SERVICE: SERVICE, REGISTRY_AUTH_TOKEN_ISSUER: ISSUER, REGISTRY_AUTH_TOKEN_JWKS: jwks },
  });
  t.teardown(() => b.stop());
  const call = client(b);
  t.equal((await login(call, 'alice', 'nope')).status, 401, 'bad password');
  const r = await login(call, 'alice', 'alice-pw1');
  t.equal(r.status, 200);
  t.equal(r.body.user, 'alice');
  t.same((jwt.decode(r.cookie!.value) as jwt.JwtPayload).access, [{ type: 'registry', name: 'catalog', actions: ['*'] }], 'the token service’s own token');
  t.equal((await call('/berth/v1/session', { cookie: r.cookie!.value })).body.user, 'alice');
});

t.test('htpasswd', async (t) => {
  const file = path.join(dir, 'htpasswd');
  fs.writeFileSync(file, `ci:${bcrypt.hashSync('ci-secret-1', 5)}\n`);
  const b = await startBerth({ env: { REGISTRY_AUTH_HTPASSWD_REALM: 'Registry Realm', REGISTRY_AUTH_HTPASSWD_PATH: file } });
  t.teardown(() => b.stop());
  const call = client(b);
  t.same((await call('/berth/v1/session')).body, { user: null, auth: 'htpasswd', deletesEnabled: true, host: b.host });
  t.equal((await login(call, 'ci', 'wrong')).status, 401);
  const r = await login(call, 'ci', 'ci-secret-1');
  t.equal(r.status, 200);
  t.ok(r.cookie?.attrs.includes('HttpOnly') && r.cookie.attrs.includes('SameSite=Strict'));
  const cookie = r.cookie!.value;
  t.notMatch(cookie, /ci-secret-1/, 'no password in the cookie');
  t.equal((await call('/berth/v1/session', { cookie })).body.user, 'ci');
  const [u, exp, mac] = cookie.split('.');
  t.equal((await call('/berth/v1/session', { cookie: [u, Number(exp) + 3600, mac].join('.') })).body.user, null, 'a longer expiry breaks the MAC');
  t.equal((await call('/berth/v1/session', { cookie: [Buffer.from('root').toString('base64url'), exp, mac].join('.') })).body.user, null, 'so does another name');
  t.equal((await call('/berth/v1/session', { authorization: basic('ci', 'ci-secret-1') })).status, 200, 'Basic credentials on the admin API');
  t.equal((await call('/berth/v1/session', { authorization: basic('ci', 'nope') })).headers.get('www-authenticate'), 'Basic realm="Registry Realm",charset="UTF-8"');
  // A changed password ends every session of that user, on every replica reading the file.
  fs.writeFileSync(file, `ci:${bcrypt.hashSync('ci-secret-2', 5)}\n`);
  await waitFor('the session to end after the password changed', async () => (await call('/berth/v1/session', { cookie })).body.user === null);
  const renewed = await login(call, 'ci', 'ci-secret-2');
  t.equal(renewed.status, 200);
});

t.test('no auth configured: nothing to sign in to', async (t) => {
  const b = await startBerth();
  t.teardown(() => b.stop());
  const call = client(b);
  t.same((await call('/berth/v1/session')).body, { user: null, auth: 'none', deletesEnabled: true, host: b.host });
  const r = await login(call, 'x', 'y');
  t.equal(r.status, 405);
  t.equal(code(r), 'UNSUPPORTED');
  t.equal((await call('/berth/v1/session', { method: 'DELETE', origin: 'http://evil.example' })).status, 403, 'cross-origin state changes are refused here too');
});


