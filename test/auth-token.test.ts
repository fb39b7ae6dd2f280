// The token service and the registry-side verifier over real HTTP: a Koa app
// with the token service and, behind requiredAccess + createRegistryAuth, a
// minimal resource so each request's admission is observable.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import t from 'tap';
import { requiredAccess, type RouteKind } from '../auth/access';
import { createRegistryAuth, createTokenService } from '../auth/index';
import { jwkThumbprint, libtrustKeyID } from '../auth/keys';
import { LEEWAY_SECONDS } from '../auth/verifier';
import { tempDir } from './helpers/berth';
import { addUser, basic, TEST_POLICY, writeChain, writeKey } from './helpers/auth';

const SERVICE = 'registry.test';
const ISSUER = 'berth-test-issuer';
const quiet = { warn: () => {} };

const dir = tempDir('berth-auth-');

const signer = writeKey(dir, 'signer');
const usersFile = path.join(dir, 'users.yml');
const policyFile = path.join(dir, 'policy.yml');
fs.writeFileSync(policyFile, TEST_POLICY);

/** Route → kind/name as the server's matcher does, enough for these tests. */
function route(p: string): { kind: RouteKind; name?: string } | undefined {
  if (p === '/v2/') return { kind: 'base' };
  if (p === '/v2/_catalog') return { kind: 'catalog' };
  const m = /^\/v2\/(.+?)\/(blobs\/uploads|blobs|manifests|tags|referrers)(\/.*)?$/.exec(p);
  if (!m) return undefined;
  const kind = ({ 'blobs/uploads': 'upload', blobs: 'blob', manifests: 'manifest', tags: 'tags', referrers: 'referrers' } as const)[m[2] as 'blobs'];
  return { kind, name: m[1] };
}

async function listen(app: Koa): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) };
}

function registryApp(auth: Koa.Middleware, tokens?: Koa.Middleware): Koa {
  const app = new Koa();
  if (tokens) app.use(tokens);
  app.use(async (ctx, next) => {
    const r = route(ctx.path);
    if (!r) return;
    ctx.state.access = requiredAccess(ctx.method, r, new URLSearchParams(ctx.querystring));
    await next();
  });
  app.use(auth);
  app.use((ctx) => {
    const may = ['public/app', 'alice/app', 'team/app', 'private/x'].filter((n) => ctx.state.auth.may('repository', n, 'pull'));
    ctx.body = { subject: ctx.state.auth.subject ?? null, may };
  });
  return app;
}

interface TokenBody { token: string; access_token: string; expires_in: number; issued_at: string; refresh_token?: string; scope?: string }

t.test('token service and verifier', async (t) => {
  const warnings: string[] = [];
  await addUser(usersFile, 'alice', 'alice-pw', ['dev']);
  await addUser(usersFile, 'ops1', 'ops1-pw', ['ops']);
  await addUser(usersFile, 'root', 'root-pw');
  const svc = createTokenService(
    { issuer: ISSUER, key: signer.keyPath, users: usersFile, policy: policyFile, services: [SERVICE, 'other.test'], expiration: 120_000 },
    { warn: (m: string) => warnings.push(m) },
  );
  const jwksFile = path.join(dir, 'jwks.json');
  const jwksKey = writeKey(dir, 'jwks-signer', 'ec');
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...jwksKey.publicKey.export({ format: 'jwk' }), kid: 'my-key-1' }] }));
  const chain = writeChain(dir, 'x5c');
  const untrusted = writeChain(dir, 'rogue');
  const tokenCfg = { realm: 'http://auth.example/token', service: SERVICE, issuer: ISSUER, rootcertbundle: chain.ca, jwks: jwksFile };
  const auth = createRegistryAuth(
    { token: tokenCfg },
    { trustedKeys: [svc.publicKey], authorizer: svc.authorizer(SERVICE), log: quiet },
  )!;
  const srv = await listen(registryApp(auth, svc.middleware));
  t.teardown(srv.close);
  const url = srv.url;

  const getToken = async (query: string, authz?: string) => {
    const res = await fetch(`${url}/token?${query}`, { headers: authz ? { authorization: authz } : {} });
    return { status: res.status, headers: res.headers, body: (await res.json()) as TokenBody & Record<string, unknown> };
  };
  const claims = (tok: string) => jwt.decode(tok) as jwt.JwtPayload & { access: { type: string; name: string; actions: string[] }[] };
  const call = (p: string, token?: string, method = 'GET') =>
    fetch(url + p, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

  await t.test('challenge without credentials', async (t) => {
    const res = await call('/v2/alice/app/manifests/latest');
    t.equal(res.status, 401);
    t.equal(
      res.headers.get('www-authenticate'),
      `Bearer realm="http://auth.example/token",service="${SERVICE}",scope="repository:alice/app:pull"`,
    );
    const body = (await res.json()) as { errors: { code: string }[] };
    t.equal(body.errors[0].code, 'UNAUTHORIZED');
    const base = await call('/v2/');
    t.equal(base.status, 401);
    t.notMatch(base.headers.get('www-authenticate')!, /scope=/, 'no scope for /v2/');
  });

  await t.test('anonymous: public pull only', async (t) => {
    const r = await getToken(`service=${SERVICE}&scope=repository:public/app:pull,push&scope=repository:team/app:pull`);
    t.equal(r.status, 200);
    t.same(claims(r.body.token).access, [{ type: 'repository', name: 'public/app', actions: ['pull'] }]);
    t.equal(claims(r.body.token).sub, '');
    t.equal(claims(r.body.token).aud, SERVICE);
    t.equal(r.body.access_token, r.body.token);
    t.ok(r.body.expires_in >= 60);
    t.ok(Date.parse(r.body.issued_at) > 0);
    t.notOk(r.body.refresh_token, 'no refresh token for anonymous');
    t.equal((await call('/v2/public/app/manifests/latest', r.body.token)).status, 200);
    const push = await call('/v2/public/app/blobs/uploads/', r.body.token, 'POST');
    t.equal(push.status, 401);
    t.match(push.headers.get('www-authenticate')!, /error="insufficient_scope"/);
    t.equal(((await push.json()) as { errors: { code: string }[] }).errors[0].code, 'DENIED');
  });

  await t.test('bad credentials are 401, missing rights are not', async (t) => {
    const bad = await getToken(`service=${SERVICE}`, basic('alice', 'wrong'));
    t.equal(bad.status, 401);
    t.match(bad.headers.get('www-authenticate')!, /^Basic realm=/);
    const nouser = await getToken(`service=${SERVICE}`, basic('my-Secret-pw', 'x'));
    t.equal(nouser.status, 401);
    t.match(warnings, [/failed login for user alice from/, /failed login for an unknown user/]);
    t.notMatch(warnings.join('\n'), /my-Secret-pw|wrong/, 'neither unknown names nor passwords are logged');
    const ok = await getToken(`service=${SERVICE}&scope=repository:private/x:pull`, basic('alice', 'alice-pw'));
    t.equal(ok.status, 200);
    t.same(claims(ok.body.token).access, [], 'nothing granted, still a token');
    const other = await getToken(`service=unknown.test`, basic('alice', 'alice-pw'));
    t.equal(other.status, 400);
    const acct = await getToken(`service=${SERVICE}&account=root`, basic('alice', 'alice-pw'));
    t.equal(acct.status, 400, 'account must match the credentials');
    const garbage = await fetch(`${url}/token?service=${SERVICE}`, { headers: { authorization: 'Basic !!!' } });
    t.equal(garbage.status, 401);
  });

  await t.test('docker login style: empty scope token is good for /v2/, refresh via POST', async (t) => {
    const r = await getToken(`account=alice&client_id=docker&offline_token=true&service=${SERVICE}`, basic('alice', 'alice-pw'));
    t.equal(r.status, 200);
    t.same(claims(r.body.token).access, []);
    t.ok(r.body.refresh_token);
    const base = await call('/v2/', r.body.token);
    t.equal(base.status, 200);
    t.same(((await base.json()) as { subject: string }).subject, 'alice');
    t.equal((await call('/v2/alice/app/manifests/x', r.body.token)).status, 401, 'empty scope grants no repository');
    t.equal((await call('/v2/', r.body.refresh_token)).status, 401, 'a refresh token is not an access token');
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: r.body.refresh_token!,
      service: SERVICE,
      client_id: 'docker',
      scope: 'repository:alice/app:pull,push repository:team/app:pull,push,delete',
    });
    const res = await fetch(`${url}/token`, { method: 'POST', body: form });
    t.equal(res.status, 200);
    const body = (await res.json()) as TokenBody;
    t.ok(body.access_token && body.refresh_token && body.expires_in >= 60 && body.issued_at);
    t.same(claims(body.access_token).access, [
      { type: 'repository', name: 'alice/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
    ]);
    t.equal(body.scope, 'repository:alice/app:pull,push repository:team/app:pull,push');
    t.equal((await call('/v2/alice/app/blobs/uploads/', body.access_token, 'POST')).status, 200);
    t.equal((await call('/v2/alice/app/blobs/sha256:00', body.access_token, 'DELETE')).status, 401, 'no delete right granted');
  });

  await t.test('OAuth2 password grant', async (t) => {
    const post = (f: Record<string, string>) => fetch(`${url}/token`, { method: 'POST', body: new URLSearchParams(f) });
    const ok = await post({ grant_type: 'password', username: 'ops1', password: 'ops1-pw', service: SERVICE, client_id: 'containerd', access_type: 'offline', scope: 'repository:team/app:delete' });
    t.equal(ok.status, 200);
    const body = (await ok.json()) as TokenBody;
    t.ok(body.refresh_token);
    t.equal((await call('/v2/team/app/manifests/sha256:00', body.access_token, 'DELETE')).status, 200);
    const noOffline = (await (await post({ grant_type: 'password', username: 'ops1', password: 'ops1-pw', service: SERVICE })).json()) as TokenBody;
    t.notOk(noOffline.refresh_token);
    const bad = await post({ grant_type: 'password', username: 'ops1', password: 'nope', service: SERVICE });
    t.equal(bad.status, 401);
    t.equal(((await bad.json()) as { error: string }).error, 'invalid_grant');
    t.equal((await post({ grant_type: 'client_credentials', service: SERVICE })).status, 400);
    t.equal((await post({ grant_type: 'refresh_token', refresh_token: 'x.y.z', service: SERVICE })).status, 401);
    const json = await fetch(`${url}/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    t.equal(json.status, 400);
    const huge = await post({ grant_type: 'password', username: 'ops1', password: 'x'.repeat(200 * 1024), service: SERVICE });
    t.equal(huge.status, 413, 'an oversized form is answered 413, not a dropped connection');
    t.equal(((await huge.json()) as { error: string }).error, 'invalid_request');
  });

  await t.test('several services, each its own audience', async (t) => {
    const r = await getToken(`service=other.test&scope=repository:alice/app:pull`, basic('alice', 'alice-pw'));
    t.equal(claims(r.body.token).aud, 'other.test');
    const res = await call('/v2/alice/app/manifests/x', r.body.token);
    t.equal(res.status, 401, 'a token for another service is refused');
    t.match(res.headers.get('www-authenticate')!, /error="invalid_token"/);
  });

  await t.test('catalog lists only what the caller may pull', async (t) => {
    const a = await getToken(`service=${SERVICE}&scope=registry:catalog:*`, basic('alice', 'alice-pw'));
    t.same(claims(a.body.token).access, [{ type: 'registry', name: 'catalog', actions: ['*'] }]);
    const res = await call('/v2/_catalog', a.body.token);
    t.equal(res.status, 200);
    t.same(((await res.json()) as { may: string[] }).may, ['public/app', 'alice/app', 'team/app']);
    const anon = await getToken(`service=${SERVICE}&scope=registry:catalog:*`);
    t.same(claims(anon.body.token).access, [], 'anonymous gets no catalog by this policy');
    const root = await getToken(`service=${SERVICE}&scope=registry:catalog:*`, basic('root', 'root-pw'));
    const all = await call('/v2/_catalog', root.body.token);
    t.same(((await all.json()) as { may: string[] }).may, ['public/app', 'alice/app', 'team/app', 'private/x']);
  });

  await t.test('mount needs pull on from', async (t) => {
    const r = await getToken(`service=${SERVICE}&scope=repository:alice/app:pull,push&scope=repository:private/x:pull`, basic('alice', 'alice-pw'));
    const res = await call('/v2/alice/app/blobs/uploads/?mount=sha256:00&from=private/x', r.body.token, 'POST');
    t.equal(res.status, 401);
    t.match(res.headers.get('www-authenticate')!, /scope="repository:alice\/app:pull,push repository:private\/x:pull"/);
    const ok = await getToken(`service=${SERVICE}&scope=repository:alice/app:pull,push&scope=repository:public/app:pull`, basic('alice', 'alice-pw'));
    t.equal((await call('/v2/alice/app/blobs/uploads/?mount=sha256:00&from=public/app', ok.body.token, 'POST')).status, 200);
  });

  await t.test('password change invalidates refresh tokens', async (t) => {
    await addUser(usersFile, 'carol', 'carol-pw');
    await new Promise((r) => setTimeout(r, 1100));
    const r = await getToken(`service=${SERVICE}&offline_token=true`, basic('carol', 'carol-pw'));
    t.equal(r.status, 200);
    await addUser(usersFile, 'carol', 'carol-new');
    await new Promise((r) => setTimeout(r, 1100));
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: r.body.refresh_token!, service: SERVICE });
    t.equal((await fetch(`${url}/token`, { method: 'POST', body: form })).status, 401);
    t.equal((await getToken(`service=${SERVICE}`, basic('carol', 'carol-new'))).status, 200);
  });

  await t.test('attacks on the verifier', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const good = { iss: ISSUER, sub: 'alice', aud: SERVICE, iat: now, nbf: now, exp: now + 300, access: [{ type: 'repository', name: 'alice/app', actions: ['pull'] }] };
    const kid = jwkThumbprint(svc.publicKey);
    const { exp: _exp, ...withoutExp } = good;
    const sign = (payload: object, opts: jwt.SignOptions = {}) => jwt.sign(payload, signer.privateKey, { algorithm: 'RS256', keyid: kid, ...opts });
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const target = '/v2/alice/app/manifests/latest';
    t.equal((await call(target, sign(good))).status, 200, 'the well-formed token passes');

    const pem = svc.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    const hsInput = `${b64({ alg: 'HS256', typ: 'JWT', kid })}.${b64(good)}`;
    const hs = `${hsInput}.${crypto.createHmac('sha256', pem).update(hsInput).digest('base64url')}`;
    const [h, p, s] = sign(good).split('.');
    const tampered = `${h}.${b64({ ...good, access: [{ type: 'repository', name: 'alice/app', actions: ['pull', 'push', 'delete'] }] })}.${s}`;
    const foreign = writeKey(dir, 'foreign');
    const attacks: Record<string, string> = {
      'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(good)}.`,
      'alg none with kid': `${b64({ alg: 'none', typ: 'JWT', kid })}.${b64(good)}.`,
      'HS256 signed with the public key': hs,
      expired: sign({ ...good, iat: now - 1000, nbf: now - 1000, exp: now - 600 }),
      'not yet valid': sign({ ...good, nbf: now + 600, exp: now + 900 }),
      'no expiry': sign(withoutExp),
      'wrong aud': sign({ ...good, aud: 'someone-else' }),
      'wrong iss': sign({ ...good, iss: 'evil' }),
      tampered,
      'signature stripped': `${h}.${p}.`,
      'unknown kid': sign(good, { keyid: 'no-such-key' }),
      'no kid': jwt.sign(good, signer.privateKey, { algorithm: 'RS256' }),
      'foreign key claiming our kid': jwt.sign(good, foreign.privateKey, { algorithm: 'RS256', keyid: kid }),
      'x5c from an untrusted CA': jwt.sign(good, untrusted.leafKey.privateKey, {
        algorithm: 'RS256',
        header: { alg: 'RS256', x5c: [fs.readFileSync(untrusted.leafCert, 'utf8'), fs.readFileSync(untrusted.ca, 'utf8')].map(derB64) } as jwt.JwtHeader,
      }),
      'x5c garbage': sign(good, { header: { alg: 'RS256', x5c: ['bm90IGEgY2VydA=='] } as jwt.JwtHeader }),
      'access not a list': sign({ ...good, access: 'everything' }),
      'garbage token': 'a.b.c',
      'JWT header, payload not JSON': `${b64({ typ: 'JWT', alg: 'RS256', kid })}.${Buffer.from('not json').toString('base64url')}.${s}`,
      'header is a list': `${Buffer.from('[1]').toString('base64url')}.${p}.${s}`,
      'payload is null': `${h}.${Buffer.from('null').toString('base64url')}.${s}`,
      'alg is a number': `${b64({ alg: 5, kid })}.${p}.${s}`,
      'kid is an object': `${b64({ alg: 'RS256', kid: { a: 1 } })}.${p}.${s}`,
      'x5c is an object': `${b64({ alg: 'RS256', x5c: { a: 1 } })}.${p}.${s}`,
      'x5c too long': `${b64({ alg: 'RS256', x5c: Array(9).fill('AAAA') })}.${p}.${s}`,
      'access entries malformed': sign({ ...good, access: [{ type: 'repository', name: 'alice/app', actions: 'pull' }] }),
      'access entry null': sign({ ...good, access: [null] }),
      'huge token': 'x'.repeat(9000),
    };
    for (const [name, tok] of Object.entries(attacks)) {
      const res = await call(target, tok);
      t.equal(res.status, 401, name);
      t.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/, `${name}: challenge says invalid_token`);
    }
    const scoped: Record<string, [string, string, string]> = {
      'token for repo A used on repo B': [sign(good), '/v2/team/app/manifests/latest', 'GET'],
      'pull token used to push': [sign(good), '/v2/alice/app/blobs/uploads/', 'POST'],
      'pull token used to delete': [sign(good), '/v2/alice/app/manifests/sha256:00', 'DELETE'],
    };
    for (const [name, [tok, p2, method]] of Object.entries(scoped)) {
      const res = await call(p2, tok, method);
      t.equal(res.status, 401, name);
      t.match(res.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/, name);
    }
    for (const header of ['Bearer', 'Bearer ' + 'a'.repeat(20000), 'Basic abc', 'garbage', 'Bearer a b c', 'Bearer \u00ff']) {
      const res = await fetch(url + target, { headers: { authorization: header } }).catch(() => undefined);
      // Node itself answers 431 to headers beyond its limit; everything else is ours.
      t.ok(res && (res.status === 401 || res.status === 431), `authorization ${JSON.stringify(header.slice(0, 12))}: ${res?.status}`);
    }

    // Keys the registry trusts in other ways.
    const viaChain = jwt.sign(good, chain.leafKey.privateKey, {
      algorithm: 'RS256',
      header: { alg: 'RS256', x5c: [fs.readFileSync(chain.leafCert, 'utf8'), fs.readFileSync(chain.ca, 'utf8')].map(derB64) } as jwt.JwtHeader,
    });
    t.equal((await call(target, viaChain)).status, 200, 'x5c chained to the root bundle');
    t.equal((await call(target, jwt.sign(good, jwksKey.privateKey, { algorithm: 'ES256', keyid: 'my-key-1' }))).status, 200, 'JWKS kid');
    t.equal((await call(target, jwt.sign(good, jwksKey.privateKey, { algorithm: 'ES256', keyid: jwkThumbprint(jwksKey.publicKey) }))).status, 200, 'RFC 7638 thumbprint kid');
    t.equal((await call(target, jwt.sign(good, signer.privateKey, { algorithm: 'RS256', keyid: libtrustKeyID(signer.publicKey) }))).status, 200, 'libtrust kid');
    t.equal((await call(target, jwt.sign(good, jwksKey.privateKey, { algorithm: 'ES256', keyid: kid }))).status, 401, 'EC key signing under the RSA kid');
    t.equal((await call(target, sign({ ...good, exp: now + 10, nbf: now + 10 }))).status, 200, 'nbf within the leeway');
    // A fresh clock: the calls above took time, and the last two sit 5 s either side of the leeway's end.
    const later = Math.floor(Date.now() / 1000);
    const old = { ...good, iat: later - 600, nbf: later - 600 };
    t.equal((await call(target, sign({ ...old, exp: later - 5 }))).status, 200, 'exp a few seconds ago, within the leeway');
    t.equal((await call(target, sign({ ...old, exp: later - LEEWAY_SECONDS + 5 }))).status, 200, 'exp near the end of the leeway');
    const beyond = await call(target, sign({ ...old, exp: later - LEEWAY_SECONDS - 5 }));
    t.equal(beyond.status, 401, 'exp beyond the leeway');
    t.match(beyond.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    t.equal((await call(target, sign({ ...good, aud: ['x', SERVICE] }))).status, 200, 'aud list containing the service');
  });
});

t.test('configured algorithms only', async (t) => {
  t.throws(() => createRegistryAuth({ token: { realm: 'r', service: 's', issuer: 'i', jwks: 'x', signingalgorithms: ['HS256'] } }));
  t.throws(() => createRegistryAuth({ token: { realm: 'r', service: 's', issuer: 'i', jwks: 'x', signingalgorithms: ['none'] } }));
  const jwksFile = path.join(dir, 'only-rsa.json');
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...signer.publicKey.export({ format: 'jwk' }), kid: 'k' }] }));
  const auth = createRegistryAuth({ token: { realm: 'r', service: SERVICE, issuer: ISSUER, jwks: jwksFile, signingalgorithms: ['RS512'] } })!;
  const srv = await listen(registryApp(auth));
  t.teardown(srv.close);
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: ISSUER, aud: SERVICE, exp: now + 60, access: [] };
  const get = (tok: string) => fetch(`${srv.url}/v2/`, { headers: { authorization: `Bearer ${tok}` } });
  t.equal((await get(jwt.sign(payload, signer.privateKey, { algorithm: 'RS256', keyid: 'k' }))).status, 401, 'RS256 not configured');
  t.equal((await get(jwt.sign(payload, signer.privateKey, { algorithm: 'RS512', keyid: 'k' }))).status, 200, 'RS512 configured');
  t.throws(() => createRegistryAuth({ token: { realm: 'r', service: 's', issuer: 'i', jwks: path.join(dir, 'symmetric.json') } }), 'missing file');
  fs.writeFileSync(path.join(dir, 'oct.json'), JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }));
  t.throws(() => createRegistryAuth({ token: { realm: 'r', service: 's', issuer: 'i', jwks: path.join(dir, 'oct.json') } }), /symmetric/);
});

t.test('autoredirect takes the realm host from the request', async (t) => {
  const jwksFile = path.join(dir, 'auto.json');
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [signer.publicKey.export({ format: 'jwk' })] }));
  const auth = createRegistryAuth({ token: { realm: 'https://elsewhere.example/auth/token', service: SERVICE, issuer: ISSUER, jwks: jwksFile, autoredirect: true } })!;
  const srv = await listen(registryApp(auth));
  t.teardown(srv.close);
  const res = await fetch(`${srv.url}/v2/`);
  t.equal(res.status, 401);
  t.equal(res.headers.get('www-authenticate'), `Bearer realm="${srv.url}/auth/token",service="${SERVICE}"`);
});

t.test('failed logins are slowed down', async (t) => {
  const svc = createTokenService({ issuer: ISSUER, key: signer.keyPath, users: usersFile, policy: policyFile, services: [SERVICE] }, quiet);
  const app = new Koa();
  app.use(svc.middleware);
  const srv = await listen(app);
  t.teardown(srv.close);
  const attempt = async (pw: string) => {
    const t0 = Date.now();
    const res = await fetch(`${srv.url}/token?service=${SERVICE}`, { headers: { authorization: basic('alice', pw) } });
    await res.arrayBuffer();
    return { status: res.status, ms: Date.now() - t0 };
  };
  const first = [];
  for (let i = 0; i < 5; i++) first.push(await attempt('guess' + i));
  t.ok(first.every((a) => a.status === 401));
  const slowed = await attempt('guess-6');
  t.equal(slowed.status, 401);
  t.ok(slowed.ms >= 240, `6th failure waited ${slowed.ms} ms`);
  const right = await attempt('alice-pw');
  t.equal(right.status, 200, 'the right password still works, after the wait');
  t.ok(right.ms >= 400, `and waited ${right.ms} ms too`);
});

function derB64(pem: string): string {
  return new crypto.X509Certificate(pem).raw.toString('base64');
}
