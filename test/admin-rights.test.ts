// The admin API with token auth: every answer filtered by the caller's rights,
// exactly as the token service's policy decides them (anonymous with a token
// or with no credential at all, two users, an admin), no repository name leaking to someone who may not pull it, and
// deletes only with delete rights.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { api, errorCode, indexSettled } from './helpers/admin-client';
import { addUser, basic, TEST_POLICY, writeKey } from './helpers/auth';
import { startBerth, tempDir } from './helpers/berth';
import { freePort } from './helpers/process';
import { pushImage, randomBlob } from './helpers/registry-client';

const SERVICE = 'berth-admin';
const dir = tempDir('berth-admin-rights-');
const creds: Record<string, string> = { alice: 'alice-pw1', bob: 'bob-pw12', root: 'root-pw1' };
// public/*: anonymous pull; alice/*, bob/*: their own; team/*: group dev (alice);
// team/secret: ops1 only; private/*: nobody but the admin.
const REPOS = ['public/web', 'alice/tool', 'bob/tool', 'team/app', 'team/secret', 'private/vault'];

t.test('admin API answers only what the caller may pull', async (t) => {
  const root = path.join(dir, 'store');
  // Content first, on the same store without auth; every repository shares one base layer.
  const base = randomBlob(2048);
  const plain = await startBerth({ root });
  const images = new Map<string, string>();
  for (const repo of REPOS) images.set(repo, (await pushImage(plain.url, repo, 'v1', randomBlob(64), [base, randomBlob(512)])).digest);
  await plain.stop();

  const signer = writeKey(dir, 'signer');
  const usersFile = path.join(dir, 'users.yml');
  const policyFile = path.join(dir, 'policy.yml');
  fs.writeFileSync(policyFile, TEST_POLICY);
  await addUser(usersFile, 'alice', creds.alice, ['dev']);
  await addUser(usersFile, 'bob', creds.bob);
  await addUser(usersFile, 'root', creds.root);
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    ['auth:', '  token:', `    realm: http://127.0.0.1:${port}/token`, `    service: ${SERVICE}`, '    issuer: test', 'tokenserver:', '  issuer: test', `  key: ${signer.keyPath}`, `  users: ${usersFile}`, `  policy: ${policyFile}`, `  services: [${SERVICE}]`, ''].join('\n'),
  );
  const berth = await startBerth({ root, port, config });
  t.teardown(() => berth.stop());
  const url = berth.url;
  await indexSettled(url);

  const tokenFor = async (user: string | undefined, scopes: string[] = []) => {
    const q = new URLSearchParams({ service: SERVICE });
    for (const s of scopes) q.append('scope', s);
    const res = await fetch(`${url}/token?${q}`, { headers: user ? { authorization: basic(user, creds[user]) } : {} });
    t.equal(res.status, 200, `token for ${user ?? 'anonymous'}`);
    return ((await res.json()) as { token: string }).token;
  };
  /** What the token service grants the user on a repository, asked the way docker asks. */
  const granted = async (user: string | undefined, repo: string, action: string) => {
    const tok = await tokenFor(user, [`repository:${repo}:${action}`]);
    const claims = JSON.parse(Buffer.from(tok.split('.')[1], 'base64url').toString()) as { access: { name: string; actions: string[] }[] };
    return claims.access.some((a) => a.name === repo && a.actions.includes(action));
  };

  for (const user of [undefined, 'alice', 'bob', 'root']) {
    const who = user ?? 'anonymous';
    await t.test(who, async (t) => {
      const token = await tokenFor(user);
      const visible: string[] = [];
      for (const repo of REPOS) if (await granted(user, repo, 'pull')) visible.push(repo);
      t.ok(visible.length < REPOS.length || user === 'root', `${who} may not pull everything`);
      const list = await api<{ repositories: { name: string }[]; total: number }>(url, '/berth/v1/repositories', { token });
      t.equal(list.status, 200);
      t.same(list.body.repositories.map((r) => r.name), [...visible].sort(), 'the list: exactly what the policy lets it pull');
      t.equal(list.body.total, visible.length, 'the total counts nothing hidden');
      if (!user) {
        const bare = await api<{ repositories: { name: string }[] }>(url, '/berth/v1/repositories');
        t.same(bare.body.repositories.map((r) => r.name), [...visible].sort(), 'no credential at all: what anonymous may pull');
      }
      const text = JSON.stringify(list.body);
      for (const hidden of REPOS.filter((r) => !visible.includes(r))) t.notOk(text.includes(hidden), `no trace of ${hidden}`);

      for (const repo of REPOS) {
        const shown = visible.includes(repo);
        for (const p of [`/berth/v1/repositories/${repo}`, `/berth/v1/repositories/${repo}/_tags`, `/berth/v1/repositories/${repo}/_manifests/v1`, `/berth/v1/repositories/${repo}/_delete`]) {
          const r = await api(url, p, { token });
          if (shown) t.equal(r.status, 200, `${p}: shown`);
          else t.same([r.status, errorCode(r)], [404, 'NAME_UNKNOWN'], `${p}: as if it did not exist`);
        }
      }
      const missing = await api(url, '/berth/v1/repositories/no/such', { token });
      t.same([missing.status, errorCode(missing)], [404, 'NAME_UNKNOWN'], 'a repository that does not exist answers the same');

      // The shared base layer: only the images the caller may see count, and only their repositories show.
      if (visible.length) {
        const img = await api<{ image: { layers: { digest: string; sharedImages: number; sharedRepositories: number }[] } }>(url, `/berth/v1/repositories/${visible[0]}/_manifests/v1`, { token });
        const shared = img.body.image.layers.find((l) => l.digest === base.digest)!;
        t.same([shared.sharedImages, shared.sharedRepositories], [visible.length - 1, visible.length - 1], 'sharing counts only visible images');
        const users = await api<{ repositories: number; images: { repository: string }[] }>(url, `/berth/v1/blobs/${base.digest}/images`, { token });
        t.same(users.body.images.map((i) => i.repository), [...visible].sort(), 'blob users: visible repositories only');
        t.equal(users.body.repositories, visible.length);
      } else {
        const users = await api(url, `/berth/v1/blobs/${base.digest}/images`, { token });
        t.same([users.status, errorCode(users)], [404, 'BLOB_UNKNOWN'], 'a blob only hidden repositories use is unknown');
      }
      // Usage: the shared base counts only visible repositories, even for a caller with the catalog's rights.
      const usage = await api<{ sharedLayers: { digest: string; repositories: number; images: number }[]; repositories: { name: string }[] }>(url, '/berth/v1/usage', { token });
      t.same(usage.body.sharedLayers.find((l) => l.digest === base.digest) ?? null, visible.length >= 2 ? { digest: base.digest, size: base.bytes.length, repositories: visible.length, images: visible.length } : null, 'usage: the shared layer as far as it is visible');
      t.same(usage.body.repositories.map((r) => r.name).sort(), [...visible].sort(), 'usage: visible repositories only');
      const catalog = await api<{ repositories: string[] }>(url, '/v2/_catalog', { token: await tokenFor(user, ['registry:catalog:*']) });
      if (catalog.status === 200) t.same(catalog.body.repositories, [...visible].sort(), 'the catalog agrees');
    });
  }

  await t.test('deletes need delete rights', async (t) => {
    const bob = await tokenFor('bob');
    t.ok(await granted('bob', 'alice/tool', 'pull'), 'bob may pull alice/tool');
    t.notOk(await granted('bob', 'alice/tool', 'delete'), 'but not delete it');
    const r = await api<{ deletable: boolean }>(url, '/berth/v1/repositories/alice/tool', { token: bob });
    t.equal(r.body.deletable, false);
    const denied = await api(url, '/berth/v1/repositories/alice/tool', { method: 'DELETE', token: bob });
    t.same([denied.status, errorCode(denied)], [403, 'DENIED']);
    const hidden = await api(url, '/berth/v1/repositories/private/vault', { method: 'DELETE', token: bob });
    t.same([hidden.status, errorCode(hidden)], [404, 'NAME_UNKNOWN'], 'a hidden repository cannot be probed by deleting it');
    const alice = await tokenFor('alice');
    const own = await api(url, '/berth/v1/repositories/alice/tool/_tags/v1', { method: 'DELETE', token: alice });
    t.equal(own.status, 202, 'alice deletes a tag of her own repository');
    const gone = await api(url, '/berth/v1/repositories/alice/tool', { method: 'DELETE', token: alice });
    t.equal(gone.status, 202, 'and the repository');
    t.equal((await api(url, '/berth/v1/repositories/alice/tool', { token: alice })).status, 404);
  });
});
