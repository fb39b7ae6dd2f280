// Policy evaluation (precedence, principals, reload), the users file, and
// htpasswd Basic auth on a registry-side middleware over HTTP.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import Koa from 'koa';
import t from 'tap';
import { requiredAccess } from '../auth/access';
import { createRegistryAuth } from '../auth/index';
import { allowedActions, globToRegExp, parsePolicy } from '../auth/policy';
import { ReloadingFile } from '../auth/reload';
import { FailureThrottle } from '../auth/throttle';
import { hashPassword, parseUsers, verifyPassword } from '../auth/users';
import { tempDir } from './helpers/berth';
import { basic, TEST_POLICY } from './helpers/auth';

const dir = tempDir('berth-policy-');

t.test('globs', async (t) => {
  t.ok(globToRegExp('team/*').test('team/app'));
  t.notOk(globToRegExp('team/*').test('team/a/b'), '* stays in one component');
  t.ok(globToRegExp('team/**').test('team/a/b'));
  t.ok(globToRegExp('a?c').test('abc'));
  t.notOk(globToRegExp('a.c').test('abc'), 'dots are literal');
});

t.test('policy matrix and precedence', async (t) => {
  const p = parsePolicy(TEST_POLICY);
  const alice = { name: 'alice', groups: ['dev'] };
  const bob = { name: 'bob', groups: [] };
  const ops1 = { name: 'ops1', groups: ['ops'] };
  const root = { name: 'root', groups: [] };
  const acts = (s: typeof alice | undefined, name: string, type = 'repository') =>
    [...allowedActions(p, 'svc', s, type, name)].sort();
  t.same(acts(undefined, 'public/app'), ['pull'], 'anonymous pulls public');
  t.same(acts(bob, 'public/app'), ['pull'], 'anonymous grants apply to users too');
  t.same(acts(alice, 'public/app'), ['pull', 'push'], 'group grant');
  t.same(acts(undefined, 'alice/app'), [], 'anonymous: nothing elsewhere');
  t.same(acts(alice, 'alice/app'), ['delete', 'pull', 'push'], 'own namespace');
  t.same(acts(bob, 'alice/app'), ['pull'], 'another namespace: the default');
  t.same(acts(alice, 'team/app'), ['pull', 'push']);
  t.same(acts(ops1, 'team/app'), ['delete', 'pull', 'push']);
  t.same(acts(alice, 'team/secret'), [], 'exact rule beats team/*');
  t.same(acts(ops1, 'team/secret'), ['pull']);
  t.same(acts(alice, 'team/a/b'), ['pull'], 'team/* does not reach deeper: default');
  t.same(acts(alice, 'private/x'), [], 'empty grant denies even the default');
  t.same(acts(root, 'private/x'), ['delete', 'pull', 'push'], 'admin');
  t.same(acts(bob, 'catalog', 'registry'), ['*']);
  t.same(acts(undefined, 'catalog', 'registry'), []);
  t.same(acts(root, 'x', 'other'), [], 'unknown resource types grant nothing');

  const q = parsePolicy(`
rules:
  - repository: "a/**"
    grant: { authenticated: [pull] }
  - repository: "a/b/**"
    grant: { authenticated: [push] }
  - repository: "a/*/c"
    grant: { authenticated: [delete] }
  - repository: "x/*"
    services: [other]
    grant: { anonymous: ['*'] }
`);
  const u = { name: 'u', groups: [] };
  t.same([...allowedActions(q, 'svc', u, 'repository', 'a/z')], ['pull']);
  t.same([...allowedActions(q, 'svc', u, 'repository', 'a/b/z')], ['push'], 'more literal characters win');
  t.same([...allowedActions(q, 'svc', u, 'repository', 'a/b/c')], ['push'], 'a tie goes to the earlier rule');
  t.same([...allowedActions(q, 'svc', u, 'repository', 'x/y')], [], 'rule for another service');
  t.same([...allowedActions(q, 'other', undefined, 'repository', 'x/y')].sort(), ['delete', 'pull', 'push']);

  t.throws(() => parsePolicy('rules: [{repository: "a", grant: {u: [fly]}}]'), /unknown action/);
  t.throws(() => parsePolicy('rulez: []'), /unknown key/);
  t.throws(() => parsePolicy('rules: [{grant: {}}]'), /pattern required/);
});

t.test('policy file reloads; a broken edit keeps the last good one', async (t) => {
  const file = path.join(dir, 'policy.yml');
  fs.writeFileSync(file, 'default: {anonymous: [pull]}\n');
  const errors: string[] = [];
  const policy = new ReloadingFile(file, parsePolicy, (e) => errors.push(e.message));
  const anonPull = () => allowedActions(policy.get(), 's', undefined, 'repository', 'r').has('pull');
  t.ok(anonPull());
  fs.writeFileSync(file, 'default: {}\n');
  await new Promise((r) => setTimeout(r, 1100));
  t.notOk(anonPull(), 'picked up without restart');
  fs.writeFileSync(file, 'default: [not, a, map\n');
  await new Promise((r) => setTimeout(r, 1100));
  t.notOk(anonPull(), 'kept the last good policy');
  t.equal(errors.length, 1);
  t.throws(() => new ReloadingFile(path.join(dir, 'missing.yml'), parsePolicy, () => {}), /not found/);
});

t.test('failure throttle: per user name, and per address with a higher threshold', async (t) => {
  const th = new FailureThrottle();
  for (let i = 0; i < 5; i++) th.failed('alice', '10.0.0.1');
  t.equal(th.delayMs('alice', '10.0.0.2'), 250, 'the user is slowed from any address');
  t.equal(th.delayMs('bob', '10.0.0.1'), 0, 'others behind the same address are not, yet');
  th.failed('alice', '10.0.0.1');
  t.equal(th.delayMs('alice', '10.0.0.1'), 500, 'doubling');
  for (let i = 0; i < 14; i++) th.failed(`user${i}`, '10.0.0.1');
  t.equal(th.delayMs('bob', '10.0.0.1'), 250, 'an address guessing many names is slowed');
  t.equal(th.delayMs('bob', '10.0.0.3'), 0);
  for (let i = 0; i < 40; i++) th.failed('alice', '10.0.0.1');
  t.equal(th.delayMs('alice', '10.0.0.1'), 5000, 'capped');
  th.succeeded('alice');
  t.equal(th.delayMs('alice', '10.0.0.9'), 0, 'success clears the user');
});

t.test('password hashes', async (t) => {
  const h = await hashPassword('s3cret');
  t.match(h, /^scrypt\$32768\$8\$1\$/);
  t.not(h, await hashPassword('s3cret'), 'salted');
  t.ok(await verifyPassword('s3cret', h));
  t.notOk(await verifyPassword('s3cret!', h));
  t.notOk(await verifyPassword('s3cret', 'scrypt$1$1$1$AA$AA'), 'malformed hash');
  t.notOk(await verifyPassword('s3cret', h.replace('$32768$', '$999999999$')), 'absurd cost refused');
  t.throws(() => parseUsers('users: {Alice: {password: x}}'), /invalid user name/);
  t.throws(() => parseUsers('users: {anonymous: {password: x}}'), /invalid user name/);
  t.throws(() => parseUsers('users: {bob: {}}'), /no password/);
});

t.test('htpasswd on the registry', async (t) => {
  const file = path.join(dir, 'htpasswd');
  fs.writeFileSync(file, `# comment\nalice:${bcrypt.hashSync('alice-pw', 10)}\nmd5user:$apr1$abc$def\n`);
  const warnings: string[] = [];
  const auth = createRegistryAuth({ htpasswd: { realm: 'Registry Realm', path: file } }, { log: { warn: (m) => warnings.push(m) } })!;
  t.match(warnings, [/:3: skipped/], 'non-bcrypt entries are refused');
  const app = new Koa();
  app.use(async (ctx, next) => {
    ctx.state.access = requiredAccess(ctx.method, { kind: 'manifest', name: 'any/repo' }, new URLSearchParams());
    await next();
  });
  app.use(auth);
  app.use((ctx) => {
    ctx.body = { subject: ctx.state.auth.subject, push: ctx.state.auth.may('repository', 'x', 'push') };
  });
  const server = http.createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v2/any/repo/manifests/latest`;
  const none = await fetch(url);
  t.equal(none.status, 401);
  t.equal(none.headers.get('www-authenticate'), 'Basic realm="Registry Realm",charset="UTF-8"');
  t.same(((await none.json()) as { errors: { code: string }[] }).errors[0].code, 'UNAUTHORIZED');
  const ok = await fetch(url, { headers: { authorization: basic('alice', 'alice-pw') } });
  t.equal(ok.status, 200);
  t.same(await ok.json(), { subject: 'alice', push: true });
  for (const h of [basic('alice', 'nope'), basic('nobody', 'alice-pw'), basic('md5user', 'x'), 'Bearer abc', 'Basic ###']) {
    const res = await fetch(url, { headers: { authorization: h } });
    t.equal(res.status, 401, h);
    await res.arrayBuffer();
  }
});
