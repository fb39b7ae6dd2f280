// The indexes across processes: two replicas on one store see each other's
// pushes and deletes through the change feed; a store distribution wrote gets
// its markers derived on first start; a restart reads the snapshot and the
// feed written since instead of walking the store.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { indexKeys } from '../storage/index/keys';
import { api, errorCode, indexSettled } from './helpers/admin-client';
import { startBerth, tempDir } from './helpers/berth';
import { haveDistribution, startDistribution } from './helpers/distribution';
import { inCI } from './helpers/clients';
import { waitFor } from './helpers/ops-client';
import { mountBlob, pushImage, randomBlob } from './helpers/registry-client';

const FAST = { REGISTRY_BERTH_INDEX_POLLINTERVAL: '200ms' };
const names = async (url: string) => (await api<{ repositories: { name: string; tags: number }[] }>(url, '/berth/v1/repositories')).body.repositories;

t.test('two replicas on one store follow each other', async (t) => {
  const root = tempDir('berth-replicas-');
  const a = await startBerth({ root, env: FAST });
  const b = await startBerth({ root, env: FAST });
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  await Promise.all([indexSettled(a.url), indexSettled(b.url)]);

  const base = randomBlob(1000);
  await pushImage(a.url, 'shared/one', 'v1', randomBlob(10), [base]);
  await waitFor('b to list what a pushed', async () => (await names(b.url)).some((r) => r.name === 'shared/one'), 5000);
  t.same((await api<{ repositories: string[] }>(b.url, '/v2/_catalog')).body.repositories, ['shared/one'], "b's catalog has it");
  await pushImage(a.url, 'shared/one', 'v2', randomBlob(11), [base]);
  await waitFor("b's figures to follow a's second tag", async () => (await names(b.url)).find((r) => r.name === 'shared/one')?.tags === 2, 5000);
  t.pass("b's figures follow a's pushes");

  // Pushed on b, shared with a's image: a sees the repository and the sharing.
  await pushImage(b.url, 'shared/two', 'v1', randomBlob(12), [base]);
  await waitFor('a to list what b pushed', async () => (await names(a.url)).some((r) => r.name === 'shared/two'), 5000);
  const users = await api<{ repositories: number }>(a.url, `/berth/v1/blobs/${base.digest}/images`);
  t.equal(users.body.repositories, 2, 'blob users are in the store, the same for both');

  const del = await api(b.url, '/berth/v1/repositories/shared/one', { method: 'DELETE' });
  t.equal(del.status, 202);
  await waitFor('a to drop what b deleted', async () => !(await names(a.url)).some((r) => r.name === 'shared/one'), 5000);
  t.same((await api<{ repositories: string[] }>(a.url, '/v2/_catalog')).body.repositories, ['shared/two']);
  const gone = await api(a.url, '/berth/v1/repositories/shared/one');
  t.same([gone.status, errorCode(gone)], [404, 'NAME_UNKNOWN']);
});

t.test('a store distribution wrote: markers derived on first start', { skip: !haveDistribution() && !inCI() && 'distribution 2.8.2 not installed' }, async (t) => {
  const root = tempDir('berth-from-distribution-');
  const dist = await startDistribution({ root });
  const base = randomBlob(3000);
  const one = await pushImage(dist.url, 'legacy/one', 'v1', randomBlob(20), [base]);
  await pushImage(dist.url, 'legacy/one', 'also', randomBlob(20), [base]).then(() => undefined);
  await pushImage(dist.url, 'legacy/two', 'v1', randomBlob(21), [base]);
  await dist.stop();
  t.notOk(fs.existsSync(path.join(root, indexKeys.state)), 'distribution wrote no index');

  const berth = await startBerth({ root });
  t.teardown(() => berth.stop());
  await indexSettled(berth.url);
  t.ok(fs.existsSync(path.join(root, indexKeys.state)), 'the markers were rebuilt and the index marked complete');
  t.same((await names(berth.url)).map((r) => [r.name, r.tags]), [['legacy/one', 2], ['legacy/two', 1]]);
  const users = await api<{ images: { repository: string }[] }>(berth.url, `/berth/v1/blobs/${base.digest}/images`);
  t.same(users.body.images.map((i) => i.repository), ['legacy/one', 'legacy/one', 'legacy/two'], 'blob users derived from the manifests');
  const tags = await api<{ tags: { name: string; pushedAt: string | null; pushedBy: string | null }[] }>(berth.url, '/berth/v1/repositories/legacy/one/_tags');
  t.ok(tags.body.tags.every((x) => x.pushedAt && x.pushedBy === null), 'push time from the tag link, pusher unknown');
  t.ok(await mountBlob(berth.url, 'fresh/repo', base.digest), 'mount without from finds a repository through the derived users');
  const del = await fetch(`${berth.url}/v2/legacy/one/manifests/${one.digest}`, { method: 'DELETE' });
  t.equal(del.status, 202);
  t.equal((await fetch(`${berth.url}/v2/legacy/one/manifests/v1`)).status, 404, 'a delete by digest found the tag through the derived tag markers');
});

t.test('a restart reads the snapshot and the feed since', async (t) => {
  const root = tempDir('berth-snapshot-');
  const env = { ...FAST, REGISTRY_BERTH_INDEX_SNAPSHOTINTERVAL: '1s', REGISTRY_BERTH_INDEX_FEEDRETENTION: '5m', REGISTRY_LOG_LEVEL: 'info' };
  const first = await startBerth({ root, env });
  for (const r of ['snap/a', 'snap/b']) await pushImage(first.url, r, 'v1', randomBlob(10), [randomBlob(100)]);
  await indexSettled(first.url);
  const snapshot = path.join(root, indexKeys.snapshot);
  await waitFor('a snapshot', () => fs.existsSync(snapshot) && fs.readFileSync(snapshot, 'utf8').includes('snap/b'), 10_000);
  // Another replica writes after the snapshot, then everything stops.
  const other = await startBerth({ root, env: { ...env, REGISTRY_BERTH_INDEX_SNAPSHOTINTERVAL: '1h', REGISTRY_BERTH_INDEX_FEEDRETENTION: '2h' } });
  await first.stop();
  await pushImage(other.url, 'snap/c', 'v1', randomBlob(10), [randomBlob(100)]);
  await other.stop();

  const again = await startBerth({ root, env });
  t.teardown(() => again.stop());
  await indexSettled(again.url);
  t.match(again.output(), /index loaded from snapshot/, 'no walk of the store');
  t.same((await names(again.url)).map((r) => r.name), ['snap/a', 'snap/b', 'snap/c'], 'the snapshot plus what the feed holds since');
});
