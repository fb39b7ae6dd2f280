// Token auth end to end on a real berth process: the in-process token service,
// a scripted `docker login` exchange, the policy matrix of issue #4 over the
// real routes, attacks through the real error handling, skopeo, podman, docker
// and containerd, a standalone `berth token-server` trusted through an x5c
// chain, htpasswd, and the example config with users made by `berth user`.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import t, { type Test } from 'tap';
import { jwkThumbprint } from '../auth/keys';
import { parseUsers, verifyPassword } from '../auth/users';
import { addUser, type AuthTestImage, basic, makeImage, TEST_POLICY, writeChain, writeKey } from './helpers/auth';
import { type Berth, CLI, startBerth } from './helpers/berth';
import { runCliOnTerminal } from './helpers/cli';
import { containersStorageArgs, findClient, inCI, needClients, run, type RunResult } from './helpers/clients';
import { haveDistribution, startDistribution } from './helpers/distribution';
import { startEngines } from './helpers/engines';
import { plainTempDir } from './helpers/images';
import { waitFor } from './helpers/ops-client';
import { freePort, launch } from './helpers/process';

const SERVICE = 'berth-e2e';
const ISSUER = 'berth-e2e-issuer';

// Lowercase and dot-free: podman reads image names from oci: paths under it.
const dir = plainTempDir('berthauthe2e');
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A client command exited 0; its output is shown only when it did not. */
function succeeded(t: Test, r: RunResult, label: string): void {
  t.equal(r.code, 0, r.code === 0 ? label : `${label}:\n${(r.stdout + r.stderr).slice(-3000)}`);
}

const signer = writeKey(dir, 'signer');
const usersFile = path.join(dir, 'users.yml');
const policyFile = path.join(dir, 'policy.yml');
fs.writeFileSync(policyFile, TEST_POLICY);

function registryConfig(port: number): string {
  const file = path.join(dir, `config-${port}.yml`);
  fs.writeFileSync(
    file,
    [
      'version: 0.1',
      'auth:',
      '  token:',
      `    realm: http://127.0.0.1:${port}/token`,
      `    service: ${SERVICE}`,
      `    issuer: ${ISSUER}`,
      'tokenserver:',
      `  issuer: ${ISSUER}`,
      `  key: ${signer.keyPath}`,
      `  users: ${usersFile}`,
      `  policy: ${policyFile}`,
      `  services: [${SERVICE}]`,
      '',
    ].join('\n'),
  );
  return file;
}

const creds: Record<string, string> = { alice: 'alice-pw1', bob: 'bob-pw12', ops1: 'ops1-pw1', root: 'root-pw1' };
let berth: Berth;

t.before(async () => {
  await addUser(usersFile, 'alice', creds.alice, ['dev']);
  await addUser(usersFile, 'bob', creds.bob);
  await addUser(usersFile, 'ops1', creds.ops1, ['ops']);
  await addUser(usersFile, 'root', creds.root);
  const port = await freePort();
  berth = await startBerth({ port, config: registryConfig(port) });
});
t.teardown(() => berth?.stop());

t.test('token auth on berth over HTTP', async (t) => {
  const url = berth.url;
  const tokenFor = async (user: string | undefined, scopes: string[]): Promise<string> => {
    const q = new URLSearchParams({ service: SERVICE });
    for (const s of scopes) q.append('scope', s);
    const res = await fetch(`${url}/token?${q}`, { headers: user ? { authorization: basic(user, creds[user]) } : {} });
    if (res.status !== 200) throw new Error(`token for ${user}: ${res.status}`);
    return ((await res.json()) as { token: string }).token;
  };
  const req = (method: string, p: string, token?: string, body?: Buffer, headers: Record<string, string> = {}) =>
    fetch(url + p, { method, body: body ? new Uint8Array(body) : undefined, headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });

  /** Push an image with plain HTTP calls; returns the statuses of the blob and manifest uploads. */
  const push = async (repo: string, tag: string, img: AuthTestImage, token: string): Promise<number[]> => {
    const statuses: number[] = [];
    for (const [digest, blob] of img.blobs) {
      const res = await req('POST', `/v2/${repo}/blobs/uploads/?digest=${digest}`, token, blob, { 'content-type': 'application/octet-stream' });
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    const res = await req('PUT', `/v2/${repo}/manifests/${tag}`, token, img.manifest, { 'content-type': img.mediaType });
    statuses.push(res.status);
    await res.arrayBuffer();
    return statuses;
  };

  const publicImg = makeImage(dir, 'public');
  const privateImg = makeImage(dir, 'private');
  const aliceImg = makeImage(dir, 'alice');

  await t.test('docker login style exchange', async (t) => {
    const ping = await fetch(`${url}/v2/`);
    t.equal(ping.status, 401);
    t.equal(ping.headers.get('docker-distribution-api-version'), 'registry/2.0');
    const challenge = ping.headers.get('www-authenticate')!;
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    t.match(challenge, /^Bearer /);
    t.equal(params.service, SERVICE);
    const login = await fetch(`${params.realm}?account=alice&client_id=docker&offline_token=true&service=${params.service}`, {
      headers: { authorization: basic('alice', creds.alice) },
    });
    t.equal(login.status, 200);
    const lb = (await login.json()) as { token: string; refresh_token: string; expires_in: number };
    t.ok(lb.refresh_token, 'identity token for docker to keep');
    const base = await req('GET', '/v2/', lb.token);
    t.equal(base.status, 200, 'GET /v2/ with the empty-scope token');
    const refreshed = await fetch(params.realm, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: lb.refresh_token, service: SERVICE, client_id: 'docker', scope: 'repository:alice/app:pull,push' }),
    });
    t.equal(refreshed.status, 200);
    const rb = (await refreshed.json()) as { access_token: string; expires_in: number };
    t.ok(rb.expires_in >= 60);
    t.same(await push('alice/app', 'v1', aliceImg, rb.access_token), [201, 201, 201], 'push with the refreshed token');
  });

  await t.test('policy matrix', async (t) => {
    const dev = await tokenFor('alice', ['repository:public/app:pull,push']);
    t.same(await push('public/app', 'v1', publicImg, dev), [201, 201, 201], 'group dev pushes public/*');
    const admin = await tokenFor('root', ['repository:private/x:pull,push']);
    t.same(await push('private/x', 'v1', privateImg, admin), [201, 201, 201], 'admin pushes anywhere');

    const anon = await tokenFor(undefined, ['repository:public/app:pull,push']);
    const pulled = await req('GET', '/v2/public/app/manifests/v1', anon, undefined, { accept: publicImg.mediaType });
    t.equal(pulled.status, 200, 'anonymous pulls the public repository');
    t.equal(Buffer.from(await pulled.arrayBuffer()).toString(), publicImg.manifest.toString());
    const anonPush = await req('POST', '/v2/public/app/blobs/uploads/', anon);
    t.equal(anonPush.status, 401, 'anonymous push denied');
    t.match(anonPush.headers.get('www-authenticate')!, /insufficient_scope/);
    t.equal((await req('GET', '/v2/public/app/manifests/v1')).status, 401, 'no token at all');

    const bobOnAlice = await tokenFor('bob', ['repository:alice/app:pull,push']);
    t.equal((await req('GET', '/v2/alice/app/manifests/v1', bobOnAlice)).status, 200, 'bob may pull by the default');
    t.same(await push('alice/app', 'v2', makeImage(dir, 'bob'), bobOnAlice), [401, 401, 401], "bob cannot push alice's namespace");
    const bobOwn = await tokenFor('bob', ['repository:bob/app:pull,push']);
    t.same(await push('bob/app', 'v1', makeImage(dir, 'bob'), bobOwn), [201, 201, 201], 'bob pushes his own');

    const aliceDel = await tokenFor('alice', ['repository:team/app:pull,push,delete', 'repository:alice/app:delete']);
    t.same(await push('team/app', 'v1', makeImage(dir, 'team'), aliceDel), [201, 201, 201]);
    t.equal((await req('DELETE', '/v2/team/app/manifests/v1', aliceDel)).status, 401, 'dev has no delete in team/*');
    const opsDel = await tokenFor('ops1', ['repository:team/app:delete']);
    t.equal((await req('DELETE', '/v2/team/app/manifests/v1', opsDel)).status, 202, 'ops deletes');
    t.equal((await req('DELETE', `/v2/alice/app/manifests/${aliceImg.manifestDigest}`, aliceDel)).status, 202, 'alice deletes in her namespace');

    // private/x is readable only by the admin: its content must look missing, and no mount may take it out.
    const [cfgDigest] = [...privateImg.blobs.keys()];
    const alicePriv = await tokenFor('alice', ['repository:alice/app:pull,push', 'repository:private/x:pull']);
    const exists = await req('HEAD', `/v2/private/x/blobs/${cfgDigest}`, alicePriv);
    const missing = await req('HEAD', `/v2/private/x/blobs/sha256:${'0'.repeat(64)}`, alicePriv);
    t.equal(exists.status, 401);
    t.equal(missing.status, exists.status, 'an existing blob of an unreadable repository looks like a missing one');
    const mount = await req('POST', `/v2/alice/app/blobs/uploads/?mount=${cfgDigest}&from=private/x`, alicePriv);
    t.equal(mount.status, 401, 'mount from a repository the caller cannot pull');
    t.match(mount.headers.get('www-authenticate')!, /repository:private\/x:pull/);
    const blind = await req('POST', `/v2/alice/app/blobs/uploads/?mount=${cfgDigest}`, alicePriv);
    t.equal(blind.status, 202, 'a mount without from does not find the unreadable blob');
    t.equal((await req('HEAD', `/v2/alice/app/blobs/${cfgDigest}`, alicePriv)).status, 404);
    const [pubCfg] = [...publicImg.blobs.keys()];
    const aliceMount = await tokenFor('alice', ['repository:alice/app:pull,push', 'repository:public/app:pull']);
    t.equal((await req('POST', `/v2/alice/app/blobs/uploads/?mount=${pubCfg}&from=public/app`, aliceMount)).status, 201, 'mount with pull on from');

    const catalog = async (user: string | undefined) => {
      const res = await req('GET', '/v2/_catalog', await tokenFor(user, ['registry:catalog:*']));
      return res.status === 200 ? ((await res.json()) as { repositories: string[] }).repositories : res.status;
    };
    t.same(await catalog('alice'), ['alice/app', 'bob/app', 'public/app', 'team/app'], 'catalog without private/x');
    t.same(await catalog('root'), ['alice/app', 'bob/app', 'private/x', 'public/app', 'team/app'], 'admin sees all');
    t.equal(await catalog(undefined), 401, 'anonymous may not list');

    // The usage endpoint: rows only for what the caller may pull, store-wide figures only with the catalog's rights.
    const usage = async (user: string | undefined) => {
      const res = await req('GET', '/berth/v1/usage', await tokenFor(user, ['registry:catalog:*']));
      const body = (await res.json()) as { repositories: { name: string }[]; storedBytes: number | null };
      return { status: res.status, names: body.repositories.map((r) => r.name).sort(), stored: body.storedBytes };
    };
    const aliceUsage = await usage('alice');
    t.same([aliceUsage.status, aliceUsage.names], [200, ['alice/app', 'bob/app', 'public/app', 'team/app']], 'usage rows without private/x');
    t.equal(typeof aliceUsage.stored, 'number', 'with catalog rights: the store-wide figures');
    t.same(await usage(undefined), { status: 200, names: ['public/app'], stored: null }, 'anonymous: what it may pull, no store-wide figures');

    const tags = await req('GET', '/v2/private/x/tags/list', alicePriv);
    t.equal(tags.status, 401, 'tag list needs pull');
    t.equal((await req('GET', `/v2/private/x/referrers/${privateImg.manifestDigest}`, alicePriv)).status, 401, 'referrers need pull');
  });

  await t.test('policy edits apply without restart', async (t) => {
    const before = await tokenFor(undefined, ['repository:team/app:pull']);
    t.equal((await req('GET', '/v2/team/app/tags/list', before)).status, 401);
    fs.writeFileSync(policyFile, TEST_POLICY.replace('group:ops: [pull, push, delete]', 'group:ops: [pull, push, delete]\n      anonymous: [pull]'));
    await new Promise((r) => setTimeout(r, 1200));
    const after = await tokenFor(undefined, ['repository:team/app:pull']);
    t.equal((await req('GET', '/v2/team/app/tags/list', after)).status, 200);
    fs.writeFileSync(policyFile, TEST_POLICY);
    await new Promise((r) => setTimeout(r, 1200));
  });

  await t.test('attacks through the real server', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const kid = jwkThumbprint(signer.publicKey);
    const good = { iss: ISSUER, sub: 'alice', aud: SERVICE, iat: now, nbf: now, exp: now + 300, access: [{ type: 'repository', name: 'alice/app', actions: ['pull'] }] };
    const sign = (p: object) => jwt.sign(p, signer.privateKey, { algorithm: 'RS256', keyid: kid });
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const pem = signer.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    const hsIn = `${b64({ alg: 'HS256', typ: 'JWT', kid })}.${b64(good)}`;
    const [h, , s] = sign(good).split('.');
    const other = writeKey(dir, 'other');
    const cases: Array<[string, string, string, string]> = [
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(good)}.`, 'GET', '/v2/alice/app/tags/list'],
      ['HS256 with the public key', `${hsIn}.${crypto.createHmac('sha256', pem).update(hsIn).digest('base64url')}`, 'GET', '/v2/alice/app/tags/list'],
      ['expired', sign({ ...good, nbf: now - 900, exp: now - 600 }), 'GET', '/v2/alice/app/tags/list'],
      ['not yet valid', sign({ ...good, nbf: now + 600, exp: now + 900 }), 'GET', '/v2/alice/app/tags/list'],
      ['wrong aud', sign({ ...good, aud: 'elsewhere' }), 'GET', '/v2/alice/app/tags/list'],
      ['wrong iss', sign({ ...good, iss: 'elsewhere' }), 'GET', '/v2/alice/app/tags/list'],
      ['tampered', `${h}.${b64({ ...good, access: [{ type: 'repository', name: 'private/x', actions: ['pull'] }] })}.${s}`, 'GET', '/v2/private/x/tags/list'],
      ['repo A token on repo B', sign(good), 'GET', '/v2/private/x/tags/list'],
      ['pull token used to push', sign(good), 'POST', '/v2/alice/app/blobs/uploads/'],
      ['token of another service', sign({ ...good, aud: 'other-registry' }), 'GET', '/v2/alice/app/tags/list'],
      ['unknown kid', jwt.sign(good, other.privateKey, { algorithm: 'RS256', keyid: 'unknown' }), 'GET', '/v2/alice/app/tags/list'],
      ['garbage', 'not-a-jwt', 'GET', '/v2/alice/app/tags/list'],
      ['oversized', 'A'.repeat(12000), 'GET', '/v2/alice/app/tags/list'],
    ];
    for (const [name, tok, method, p] of cases) {
      const res = await req(method, p, tok);
      t.equal(res.status, 401, name);
      const body = (await res.json()) as { errors: { code: string }[] };
      t.ok(['UNAUTHORIZED', 'DENIED'].includes(body.errors[0].code), `${name}: ${body.errors[0].code}`);
    }
    for (const header of ['Bearer', 'Basic Zm9v', '\u00ff\u00fe', 'Bearer x y', 'Digest a=b']) {
      const res = await fetch(`${url}/v2/alice/app/tags/list`, { headers: { authorization: header } });
      t.equal(res.status, 401, `Authorization: ${JSON.stringify(header)}`);
      await res.arrayBuffer();
    }
    t.notMatch(berth.output(), /alice-pw1|bob-pw12|eyJ/, 'no passwords or tokens in the logs');
  });

});

t.test('no secret reaches the logs, at debug level with the access log on', async (t) => {
  const port = await freePort();
  const b = await startBerth({ port, config: registryConfig(port), env: { REGISTRY_LOG_LEVEL: 'debug' } });
  t.teardown(() => b.stop());
  const secrets: Record<string, string> = {};
  const json = async (res: Response) => {
    t.equal(res.status, 200, res.url);
    return (await res.json()) as { token: string; access_token: string; refresh_token: string };
  };
  const tokenPost = (form: Record<string, string>) => fetch(`${b.url}/token`, { method: 'POST', body: new URLSearchParams({ service: SERVICE, ...form }) });

  // docker login: the challenge, then Basic credentials for an empty-scope token and a refresh token.
  const ping = await fetch(`${b.url}/v2/`);
  t.equal(ping.status, 401);
  secrets.password = creds.alice;
  secrets['Basic header value'] = basic('alice', creds.alice).slice('Basic '.length);
  const login = await json(await fetch(`${b.url}/token?account=alice&client_id=docker&offline_token=true&service=${SERVICE}`, { headers: { authorization: basic('alice', creds.alice) } }));
  secrets['login token'] = login.token;
  secrets['login refresh token'] = login.refresh_token;
  // A failed login is logged (as a warning); the password tried is not.
  const wrong = 'wrong-Pass-1234';
  secrets['wrong password'] = wrong;
  secrets['wrong Basic header value'] = basic('alice', wrong).slice('Basic '.length);
  const failed = await fetch(`${b.url}/token?service=${SERVICE}`, { headers: { authorization: basic('alice', wrong), 'x-request-id': 'failed-login' } });
  t.equal(failed.status, 401);
  // containerd and docker's later requests: OAuth2 POSTs with a password and with the refresh token.
  const byPassword = await json(await tokenPost({ grant_type: 'password', username: 'alice', password: creds.alice, access_type: 'offline', scope: 'repository:alice/app:pull' }));
  secrets['password grant access token'] = byPassword.access_token;
  secrets['password grant refresh token'] = byPassword.refresh_token;
  const byRefresh = await json(await tokenPost({ grant_type: 'refresh_token', refresh_token: login.refresh_token, scope: 'repository:alice/app:pull' }));
  secrets['refresh grant access token'] = byRefresh.access_token;
  secrets['refresh grant refresh token'] = byRefresh.refresh_token;
  // The access token in a query string (not a way in, but clients may try) and as a bearer.
  const inQuery = await fetch(`${b.url}/v2/alice/app/tags/list?token=${byRefresh.access_token}`);
  t.equal(inQuery.status, 401, 'a token in the query string is not accepted');
  const last = await fetch(`${b.url}/v2/alice/app/tags/list`, { headers: { authorization: `Bearer ${byPassword.access_token}`, 'x-request-id': 'secrets-last' } });
  t.equal(last.status, 404, 'the bearer token admits (the repository is empty)');

  // Access lines are written when the response closes: wait for the last one.
  await waitFor('the last access line', () => b.output().includes('"secrets-last"'), 5000);
  const out = b.output();
  const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; path?: string; requestId?: string });
  t.equal(lines.filter((l) => l.msg === 'request' && l.path === '/token').length, 4, 'each of the 4 token requests has its access line');
  t.ok(lines.some((l) => l.msg === 'request' && l.path === '/v2/alice/app/tags/list'), 'registry requests too');
  t.match(lines.find((l) => /failed login for user alice/.test(l.msg)), { requestId: 'failed-login' }, 'the failed login is logged, with its request id');
  for (const [name, value] of Object.entries(secrets)) t.notOk(out.includes(value), `no ${name} in the logs`);
  t.notMatch(out, /eyJ/, 'nothing that looks like a JWT');
});

t.test('skopeo and podman through the token flow', async (t) => {
  const bins = needClients(t, ['skopeo', 'podman']);
  if (!bins) return;

  await t.test('skopeo with --creds', async (t) => {
    const img = makeImage(dir, 'skopeo');
    const dest = `docker://${berth.host}/alice/skopeo:1`;
    succeeded(t, await run(bins.skopeo, ['copy', '--dest-tls-verify=false', '--dest-creds', `alice:${creds.alice}`, img.ref, dest]), 'skopeo copy to alice/');
    const denied = await run(bins.skopeo, ['copy', '--dest-tls-verify=false', '--dest-creds', `bob:${creds.bob}`, img.ref, `docker://${berth.host}/alice/skopeo:2`]);
    t.not(denied.code, 0, 'bob cannot push to alice/');
    t.match(denied.stderr, /denied|unauthorized/i);
    const back = path.join(dir, 'skopeo-back');
    succeeded(t, await run(bins.skopeo, ['copy', '--src-tls-verify=false', '--src-creds', `bob:${creds.bob}`, dest, `oci:${back}:latest`]), 'skopeo copy back as bob');
    const index = JSON.parse(fs.readFileSync(path.join(back, 'index.json'), 'utf8'));
    t.equal(index.manifests[0].digest, img.manifestDigest, 'same manifest digest back');
    const anon = await run(bins.skopeo, ['inspect', '--tls-verify=false', '--no-creds', dest]);
    t.not(anon.code, 0, 'anonymous cannot read alice/');
  });

  await t.test('podman login, push, pull', async (t) => {
    const store = containersStorageArgs(path.join(dir, 'podman'));
    t.teardown(() => run(bins.podman, [...store, 'rmi', '-af']));
    const authfile = path.join(dir, 'podman-auth.json');
    const podman = (args: string[], input?: string) => run(bins.podman, [...store, ...args], { input });
    const login = await podman(['login', '--tls-verify=false', '--authfile', authfile, '-u', 'alice', '--password-stdin', berth.host], `${creds.alice}\n`);
    succeeded(t, login, 'podman login');
    t.match(login.stdout, /Login Succeeded/);
    const bad = await podman(['login', '--tls-verify=false', '--authfile', path.join(dir, 'bad.json'), '-u', 'alice', '--password-stdin', berth.host], 'wrong\n');
    t.not(bad.code, 0, 'wrong password refused at login');
    const load = await podman(['pull', makeImage(dir, 'podman').ref]);
    succeeded(t, load, 'podman pull from the OCI layout');
    const id = load.stdout.trim();
    const ref = `${berth.host}/alice/podman:1`;
    succeeded(t, await podman(['push', '--tls-verify=false', '--authfile', authfile, id, ref]), 'podman push');
    const other = await podman(['push', '--tls-verify=false', '--authfile', authfile, id, `${berth.host}/bob/podman:1`]);
    t.not(other.code, 0, "alice cannot push to bob's namespace");
    await podman(['rmi', '-af']);
    const pulled = await podman(['pull', '--tls-verify=false', '--authfile', authfile, ref]);
    succeeded(t, pulled, 'podman pull');
    t.equal(pulled.stdout.trim(), id, 'same image id back');
  });
});

t.test('docker and containerd through the token flow', async (t) => {
  const bins = needClients(t, ['docker', 'dockerd', 'containerd', 'ctr', 'skopeo']);
  if (!bins) return;
  const engines = await startEngines();
  t.teardown(() => engines.stop());
  const docker = (args: string[], input?: string) => run(bins.docker, args, { env: engines.env, input });
  const img = makeImage(dir, 'docker');
  const archive = path.join(dir, 'docker.tar');
  const local = `berth-auth-e2e/docker:${crypto.randomBytes(4).toString('hex')}`;
  succeeded(t, await run(bins.skopeo, ['copy', img.ref, `docker-archive:${archive}:${local}`]), 'docker archive');
  succeeded(t, await docker(['load', '-i', archive]), 'docker load');
  const ref = `${berth.host}/alice/docker:1`;

  const bad = await docker(['login', '-u', 'alice', '--password-stdin', berth.host], 'wrong\n');
  t.not(bad.code, 0, 'docker login with a wrong password fails');
  const login = await docker(['login', '-u', 'alice', '--password-stdin', berth.host], `${creds.alice}\n`);
  succeeded(t, login, 'docker login');
  t.match(login.stdout, /Login Succeeded/);
  const saved = JSON.parse(fs.readFileSync(path.join(engines.env.DOCKER_CONFIG!, 'config.json'), 'utf8')) as { auths: Record<string, { identitytoken?: string }> };
  // With the refresh token as identity token, docker's later token requests are OAuth2 refresh_token POSTs.
  t.ok(saved.auths[berth.host]?.identitytoken, 'docker keeps the refresh token, not the password');
  succeeded(t, await docker(['tag', local, ref]), 'docker tag');
  succeeded(t, await docker(['push', ref]), 'docker push');
  succeeded(t, await docker(['tag', local, `${berth.host}/bob/docker:1`]), 'docker tag');
  const denied = await docker(['push', `${berth.host}/bob/docker:1`]);
  t.not(denied.code, 0, "alice cannot push to bob's namespace");
  t.match(denied.stdout + denied.stderr, /denied|unauthorized/i);
  await docker(['rmi', '-f', `${berth.host}/bob/docker:1`, ref]);
  succeeded(t, await docker(['pull', ref]), 'docker pull');
  const id = (await docker(['image', 'inspect', '--format', '{{.Id}}', ref])).stdout.trim();
  t.equal(id, [...img.blobs.keys()][0], 'image id (config digest) survives the round trip');
  succeeded(t, await docker(['logout', berth.host]), 'docker logout');

  // containerd: with a password it asks the token service by POST (OAuth2 password grant).
  const ctr = (args: string[]) => run(bins.ctr, args, { env: { ...engines.env, CONTAINERD_NAMESPACE: 'berth-auth-e2e' } });
  succeeded(t, await ctr(['images', 'pull', '--plain-http', '--user', `bob:${creds.bob}`, ref]), 'ctr pull as bob');
  succeeded(t, await ctr(['images', 'tag', ref, `${berth.host}/alice/ctr:1`]), 'ctr tag');
  const bobPush = await ctr(['images', 'push', '--plain-http', '--user', `bob:${creds.bob}`, `${berth.host}/alice/ctr:1`]);
  t.not(bobPush.code, 0, 'bob may pull alice/ but not push there');
  succeeded(t, await ctr(['images', 'push', '--plain-http', '--user', `alice:${creds.alice}`, `${berth.host}/alice/ctr:1`]), 'ctr push as alice');
  const anon = await ctr(['images', 'pull', '--plain-http', `${berth.host}/alice/ctr:1`]);
  t.not(anon.code, 0, 'anonymous containerd pull of a private repository fails');
});

t.test('standalone token server for two registries (berth and CNCF distribution), trusted through an x5c chain', async (t) => {
  const chain = writeChain(dir, 'ts');
  const tsPort = await freePort();
  const tsConfig = path.join(dir, 'token-server.yml');
  fs.writeFileSync(
    tsConfig,
    [
      'tokenserver:',
      `  addr: 127.0.0.1:${tsPort}`,
      `  issuer: ${ISSUER}`,
      `  key: ${chain.leafKey.keyPath}`,
      `  certificate: ${chain.chain}`,
      `  users: ${usersFile}`,
      `  policy: ${policyFile}`,
      `  services: [${SERVICE}, second-registry]`,
      '  expiration: 2m',
      '',
    ].join('\n'),
  );
  const tokenServer = await launch({ cmd: process.execPath, args: [CLI, 'token-server', '--config', tsConfig], port: tsPort, readyPath: '/healthz', env: { ...process.env, REGISTRY_LOG_LEVEL: 'warn' } });
  t.teardown(() => tokenServer.stop());
  const berth = await startBerth({
    env: {
      REGISTRY_AUTH_TOKEN_REALM: `${tokenServer.url}/token`,
      REGISTRY_AUTH_TOKEN_SERVICE: SERVICE,
      REGISTRY_AUTH_TOKEN_ISSUER: ISSUER,
      REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE: chain.ca,
    },
  });
  t.teardown(() => berth.stop());
  const challenge = await fetch(`${berth.url}/v2/alice/app/tags/list`);
  t.equal(challenge.status, 401);
  t.match(challenge.headers.get('www-authenticate')!, `realm="${tokenServer.url}/token"`);
  const res = await fetch(`${tokenServer.url}/token?service=${SERVICE}&scope=repository:alice/app:pull`, { headers: { authorization: basic('alice', creds.alice) } });
  const body = (await res.json()) as { token: string; expires_in: number };
  t.equal(body.expires_in, 120);
  t.ok(Array.isArray((jwt.decode(body.token, { complete: true })!.header as { x5c?: string[] }).x5c), 'x5c header sent');
  const list = await fetch(`${berth.url}/v2/alice/app/tags/list`, { headers: { authorization: `Bearer ${body.token}` } });
  t.equal(list.status, 404, 'admitted (the repository is empty in this store)');
  const second = await fetch(`${tokenServer.url}/token?service=second-registry&scope=repository:alice/app:pull`, { headers: { authorization: basic('alice', creds.alice) } });
  const tok2 = ((await second.json()) as { token: string }).token;
  t.equal((await fetch(`${berth.url}/v2/alice/app/tags/list`, { headers: { authorization: `Bearer ${tok2}` } })).status, 401, "second registry's token refused here");

  // The second registry: CNCF distribution 2.8.2 with its own auth.token section trusts the same tokens.
  if (!haveDistribution()) {
    if (inCI()) t.fail('docker-registry (CNCF distribution) is not installed');
    return;
  }
  const dist = await startDistribution({
    extraYaml: ['auth:', '  token:', `    realm: ${tokenServer.url}/token`, '    service: second-registry', `    issuer: ${ISSUER}`, `    rootcertbundle: ${chain.ca}`].join('\n'),
  });
  t.teardown(() => dist.stop());
  const distChallenge = await fetch(`${dist.url}/v2/alice/app/tags/list`);
  t.equal(distChallenge.status, 401);
  t.match(distChallenge.headers.get('www-authenticate')!, 'service="second-registry"');
  const onDist = await fetch(`${dist.url}/v2/alice/app/tags/list`, { headers: { authorization: `Bearer ${tok2}` } });
  t.equal(onDist.status, 404, 'distribution admits our token (NAME_UNKNOWN: nothing pushed there yet)');
  t.equal((await fetch(`${dist.url}/v2/alice/app/tags/list`, { headers: { authorization: `Bearer ${body.token}` } })).status, 401, "and refuses the first registry's");
  const skopeo = findClient('skopeo');
  if (!skopeo) return;
  const img = makeImage(dir, 'distribution');
  const dest = `docker://${dist.host}/alice/app:1`;
  succeeded(t, await run(skopeo, ['copy', '--dest-tls-verify=false', '--dest-creds', `alice:${creds.alice}`, img.ref, dest]), 'skopeo push to distribution through our token service');
  const denied = await run(skopeo, ['copy', '--dest-tls-verify=false', '--dest-creds', `bob:${creds.bob}`, img.ref, `docker://${dist.host}/alice/app:2`]);
  t.not(denied.code, 0, 'and our policy holds there too');
});

t.test('htpasswd Basic auth on berth', async (t) => {
  const file = path.join(dir, 'htpasswd');
  const bcrypt = await import('bcryptjs');
  // Apache's `htpasswd -B` writes `$2y$05$…` (cost 5). Without apache2-utils on the test machines, the
  // entry is a bcryptjs `$2b$` hash with its prefix renamed: `$2y$` (crypt_blowfish's) and `$2b$`
  // (OpenBSD's) both mark bcrypt without the old bugs, the same algorithm giving the same hash for a salt.
  const apacheHash = bcrypt.hashSync('apache-pw-1', 5).replace(/^\$2b\$/, '$2y$');
  t.match(apacheHash, /^\$2y\$05\$/);
  fs.writeFileSync(file, `ci:${bcrypt.hashSync('ci-secret-1', 10)}\napache:${apacheHash}\n`);
  const berth = await startBerth({ env: { REGISTRY_AUTH_HTPASSWD_REALM: 'Registry Realm', REGISTRY_AUTH_HTPASSWD_PATH: file } });
  t.teardown(() => berth.stop());
  const none = await fetch(`${berth.url}/v2/`);
  t.equal(none.status, 401);
  t.equal(none.headers.get('www-authenticate'), 'Basic realm="Registry Realm",charset="UTF-8"');
  t.equal((await fetch(`${berth.url}/v2/`, { headers: { authorization: basic('ci', 'ci-secret-1') } })).status, 200);
  t.equal((await fetch(`${berth.url}/v2/`, { headers: { authorization: basic('ci', 'nope') } })).status, 401);
  t.equal((await fetch(`${berth.url}/v2/`, { headers: { authorization: basic('apache', 'apache-pw-1') } })).status, 200, 'a $2y$ entry');
  t.equal((await fetch(`${berth.url}/v2/`, { headers: { authorization: basic('apache', 'apache-pw-2') } })).status, 401, 'and its wrong password');
  const skopeo = findClient('skopeo');
  if (!skopeo) return;
  const img = makeImage(dir, 'htpasswd');
  succeeded(t, await run(skopeo, ['copy', '--dest-tls-verify=false', '--dest-creds', 'ci:ci-secret-1', img.ref, `docker://${berth.host}/any/repo:1`]), 'skopeo copy with Basic credentials');
});

t.test('the example config, with users made by `berth user`', async (t) => {
  const repoRoot = path.resolve(__dirname, '../..');
  const users = path.join(dir, 'example-users.yml');
  const key = writeKey(dir, 'example', 'ec');
  const cli = (args: string[], input = '') => run(process.execPath, [CLI, 'user', ...args, '--users', users], { input });
  const robot = await cli(['add', 'builder', '--robot', '--group', 'ci']);
  succeeded(t, robot, 'berth user add --robot');
  const secret = /secret \(shown once\): (\S+)/.exec(robot.stdout)?.[1] ?? '';
  t.ok(secret.length >= 40, 'a long random robot secret');
  t.equal((await cli(['add', 'alice', '--group', 'dev'], 'first-password\n')).code, 0);
  t.not((await cli(['add', 'alice'], 'other-password\n')).code, 0, 'add refuses an existing user');
  t.not((await cli(['add', 'shorty'], 'short\n')).code, 0, 'short passwords refused');
  t.not((await cli(['add', 'Bad/Name'], 'long-enough-pw\n')).code, 0, 'invalid names refused');
  t.notMatch(fs.readFileSync(users, 'utf8'), /first-password|secret/, 'only hashes on disk');

  const port = await freePort();
  const berth = await startBerth({
    port,
    config: path.join(repoRoot, 'deploy/examples/token-auth.yml'),
    env: {
      REGISTRY_AUTH_TOKEN_REALM: `http://127.0.0.1:${port}/token`,
      REGISTRY_TOKENSERVER_KEY: key.keyPath,
      REGISTRY_TOKENSERVER_USERS: users,
      REGISTRY_TOKENSERVER_POLICY: path.join(repoRoot, 'deploy/examples/token-auth-policy.yml'),
    },
  });
  t.teardown(() => berth.stop());
  const token = async (user: string | undefined, pw: string, scope: string) => {
    const res = await fetch(`${berth.url}/token?service=berth&scope=${scope}`, { headers: user ? { authorization: basic(user, pw) } : {} });
    return res.status === 200 ? ((await res.json()) as { token: string }).token : res.status;
  };
  const post = async (repo: string, tok: string | number) => {
    const res = await fetch(`${berth.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${tok}` } });
    await res.arrayBuffer();
    return res.status;
  };
  t.equal(await post('ci/build', await token('builder', secret, 'repository:ci/build:pull,push')), 202, 'robot pushes to ci/');
  t.equal(await post('alice/app', await token('alice', 'first-password', 'repository:alice/app:pull,push')), 202, 'alice pushes her own');
  t.equal(await post('ci/build', await token('alice', 'first-password', 'repository:ci/build:pull,push')), 401, 'dev may only pull ci/');
  t.equal(await post('library/x', await token(undefined, '', 'repository:library/x:pull,push')), 401, 'anonymous may only pull library/');

  t.equal((await cli(['passwd', 'alice'], 'second-password\n')).code, 0);
  await new Promise((r) => setTimeout(r, 1200));
  t.equal(await token('alice', 'first-password', ''), 401, 'old password refused after passwd');
  t.type(await token('alice', 'second-password', ''), 'string', 'new password works, no restart');
  t.equal((await cli(['remove', 'alice'])).code, 0);
  await new Promise((r) => setTimeout(r, 1200));
  t.equal(await token('alice', 'second-password', ''), 401, 'removed user refused');
  t.not((await cli(['remove', 'alice'])).code, 0, 'removing twice is an error');
});

t.test('`berth user` prompts for the password on a terminal, without echo', async (t) => {
  // util-linux `script` gives the command a pseudo-terminal, so it takes the prompt path, not stdin's.
  if (!/util-linux/.test(spawnSync('script', ['--version'], { encoding: 'utf8' }).stdout ?? '')) {
    if (inCI()) t.fail('util-linux script is not installed');
    else t.skip('util-linux script is not installed', () => {});
    return;
  }
  const users = path.join(dir, 'prompted-users.yml');
  const stored = () => parseUsers(fs.readFileSync(users, 'utf8')).get('dave')!.password;
  const pw = 'typed-at-the-prompt';
  const add = await runCliOnTerminal(['user', 'add', 'dave', '--users', users], [['Password: ', pw], ['Repeat password: ', pw]]);
  t.equal(add.code, 0, add.code === 0 ? 'berth user add on a terminal' : add.transcript);
  t.match(add.transcript, /Password: [^]*Repeat password: [^]*added dave/);
  t.notOk(add.transcript.includes(pw), 'what is typed is not echoed');
  t.ok(await verifyPassword(pw, stored()), 'the typed password is the one stored');

  const mismatch = await runCliOnTerminal(['user', 'passwd', 'dave', '--users', users], [['Password: ', 'another-password'], ['Repeat password: ', 'another-passw0rd']]);
  t.not(mismatch.code, 0, 'two different answers fail');
  t.match(mismatch.transcript, /do not match/);
  t.ok(await verifyPassword(pw, stored()), 'and leave the password as it was');
});
