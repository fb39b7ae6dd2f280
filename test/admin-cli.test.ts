// berth ls, rm and images against a store (the GC fixture): the same figures
// as the admin API, confirmations before deleting, and a running registry
// following what the command removed.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { api, indexSettled } from './helpers/admin-client';
import { startBerth, tempDir } from './helpers/berth';
import { runCli, runCliOnTerminal } from './helpers/cli';
import { buildFixture } from './helpers/gc-fixture';
import { waitFor } from './helpers/ops-client';

type Row = Record<string, unknown>;
const pick = (rows: Row[], keys: string[]) => rows.map((r) => Object.fromEntries(keys.map((k) => [k, r[k]])));

t.test('inventory commands', async (t) => {
  const root = tempDir('berth-inventory-');
  const { fixture } = await buildFixture(new FilesystemDriver({ rootdirectory: root }));
  const base1 = fixture.tagged[0].blobs[1];
  // A registry indexes the store first (distribution's layout carries no indexes), and answers what the commands must print.
  const berth = await startBerth({ root });
  await indexSettled(berth.url);
  const repos = (await api<{ repositories: Row[] }>(berth.url, '/berth/v1/repositories')).body.repositories;
  const tags = (await api<{ tags: Row[] }>(berth.url, '/berth/v1/repositories/a/app/_tags')).body.tags;
  const images = (await api<{ images: Row[] }>(berth.url, `/berth/v1/blobs/${base1.digest}/images`)).body.images;
  await berth.stop();

  await t.test('ls: repositories, then one repository, as the admin API has them', async (t) => {
    const json = await runCli(['ls', '--json'], root);
    t.equal(json.code, 0, json.stderr);
    const keys = ['name', 'tags', 'images', 'lastPush', 'logicalBytes', 'uniqueBytes'];
    t.same(pick(JSON.parse(json.stdout), keys), pick(repos, keys));
    const text = await runCli(['ls', '--sort', 'size'], root);
    t.equal(text.code, 0);
    t.match(text.stdout, /^REPOSITORY\s+TAGS\s+IMAGES\s+LAST PUSH\s+LOGICAL\s+UNIQUE\n/);
    const order = text.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]);
    t.same(order, [...repos].sort((a, b) => (b.logicalBytes as number) - (a.logicalBytes as number) || ((a.name as string) < (b.name as string) ? -1 : 1)).map((r) => r.name), '--sort size: largest first');
    const one = await runCli(['ls', 'a/app', '--json'], root);
    t.equal(one.code, 0, one.stderr);
    const tagKeys = ['name', 'digest', 'kind', 'platforms', 'size', 'pushedAt', 'pushedBy', 'referrers'];
    t.same(pick(JSON.parse(one.stdout), tagKeys), pick(tags, tagKeys));
    const table = await runCli(['ls', 'a/app'], root);
    t.match(table.stdout, /^TAG\s+DIGEST\s+KIND\s+PLATFORMS\s+SIZE\s+PUSHED\s+BY\nmulti\s+sha256:\w{12}\s+index\s+linux\/arch0,linux\/arch1\s/);
    const none = await runCli(['ls', 'no/such'], root);
    t.equal(none.code, 1, 'an unknown repository fails');
    t.match(none.stderr, /repository name not known/);
    t.equal((await runCli(['ls', 'a/app', 'b/app'], root)).code, 2, 'one repository at most');
  });

  await t.test('images --containing: the images a layer is part of, from indexes verify --repair rebuilds', async (t) => {
    fs.rmSync(path.join(root, 'docker/registry/v2/_berth/index'), { recursive: true, force: true });
    const before = await runCli(['images', '--containing', base1.digest], root);
    t.same([before.code, /no complete indexes/.test(before.stderr)], [2, true], 'without indexes: says how to get them');
    const repair = await runCli(['verify', '--repair'], root);
    t.match(repair.stdout, /indexes rebuilt: \d+ markers written, 0 stale removed in 3 repositories/);
    const r = await runCli(['images', '--containing', base1.digest, '--json'], root);
    t.equal(r.code, 0, r.stderr);
    t.same(JSON.parse(r.stdout).images, images);
    const text = await runCli(['images', '--containing', base1.digest], root);
    t.match(text.stdout, /^REPOSITORY\s+IMAGE\s+TAGS\n/);
    const unused = await runCli(['images', '--containing', fixture.orphan.digest], root);
    t.same([unused.code, /no repository uses/.test(unused.stderr)], [1, true], 'a blob nothing uses');
    t.equal((await runCli(['images'], root)).code, 2, '--containing is required');
  });

  await t.test('rm asks first, then removes, and a running registry follows', async (t) => {
    const config = path.join(root, '..', `${path.basename(root)}.yml`);
    fs.writeFileSync(config, `storage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\n`);
    const running = await startBerth({ root, env: { REGISTRY_BERTH_INDEX_POLLINTERVAL: '200ms' } });
    t.teardown(() => running.stop());
    await indexSettled(running.url);

    const piped = await runCli(['rm', 'a/app:v1'], root, { REGISTRY_STORAGE_DELETE_ENABLED: 'true' });
    t.same([piped.code, /pass --yes/.test(piped.stderr)], [2, true], 'no terminal and no --yes: nothing asked, nothing removed');
    const no = await runCliOnTerminal(['rm', '--config', config, 'a/app:v1'], [['[y/N]', 'n']]);
    t.equal(no.code, 1, 'answered no');
    t.match(no.transcript, /tag a\/app:v1: removes 1 tag\(s\) \(v1\) and 0 manifest\(s\); leaves 1 image\(s\) untagged; garbage collection then frees [\d.]+ \w*B \(with --delete-untagged\)/);
    t.equal((await api(running.url, '/v2/a/app/manifests/v1')).status, 200, 'still there');
    const yes = await runCliOnTerminal(['rm', '--config', config, 'a/app:v1'], [['[y/N]', 'y']]);
    t.equal(yes.code, 0, yes.transcript);
    // The registry caches tag links for berth.linkcachettl (1 s), as between replicas.
    await waitFor('the registry to see the tag gone', async () => (await api(running.url, '/v2/a/app/manifests/v1')).status === 404, 5000);

    const other = fixture.tagged[2];
    const byDigest = await runCli(['rm', `b/app@${other.digest}`, '--yes', '--json'], root, { REGISTRY_STORAGE_DELETE_ENABLED: 'true' });
    t.equal(byDigest.code, 0, byDigest.stderr);
    t.same(JSON.parse(byDigest.stdout).tags, ['latest'], 'an image goes with its tags');
    const repo = await runCli(['rm', '--repository', 'c/app', '--yes'], root, { REGISTRY_STORAGE_DELETE_ENABLED: 'true' });
    t.equal(repo.code, 0, repo.stderr);
    await waitFor('the registry to drop the removed repository', async () => (await api(running.url, '/berth/v1/repositories/c/app')).status === 404, 5000);
    t.same(((await api<{ repositories: string[] }>(running.url, '/v2/_catalog')).body.repositories), ['a/app', 'b/app'], 'the catalog follows');

    const disabled = await runCli(['rm', '--repository', 'a/app', '--yes'], root, { REGISTRY_STORAGE_DELETE_ENABLED: 'false' });
    t.same([disabled.code, /storage.delete.enabled/.test(disabled.stderr)], [2, true], 'deletes disabled in the config');
    for (const bad of [['rm', 'a/app'], ['rm'], ['rm', 'a/app:v1', '--repository', 'b/app']]) {
      t.equal((await runCli(bad, root)).code, 2, `usage error: ${bad.join(' ')}`);
    }
  });
  await t.test('what gc removes leaves the indexes: images --containing follows', async (t) => {
    const onlyOld = fixture.untagged[0].blobs[3];
    const amd = fixture.kept[2];
    t.equal((await runCli(['images', '--containing', onlyOld.digest], root)).code, 0, 'an untagged image still holds it');
    const gc = await runCli(['gc', '--min-age', '0s', '--delete-untagged'], root);
    t.equal(gc.code, 0, gc.stderr);
    t.equal((await runCli(['images', '--containing', onlyOld.digest], root)).code, 1, 'collected: no repository uses it');
    const left = JSON.parse((await runCli(['images', '--containing', base1.digest, '--json'], root)).stdout);
    t.same(left.images.map((i: Row) => `${i.repository}@${i.digest}`), [`a/app@${amd.digest}`], 'only the image gc kept');
  });
});
