// The O(page) guard: over a generated store of 1,000 repositories, what a
// catalog page, a tag page, a mount without `from`, a delete by digest and
// the admin list cost in storage operations (berth's driver metrics) is
// bounded by the answer, far below what walking the store or a repository's
// tags would cost. A regression to a walk fails here in CI; the growth curve
// itself is bench/ (`npm run bench -- growth`).
import t from 'tap';
import { startBerth, tempDir } from './helpers/berth';
import { BIG_REPO, fixtureFacts, growthShape, layoutFiles, repoName, writeLayoutToDirectory } from './helpers/layout-fixture';
import { OciClient } from './helpers/oci-client';

const shape = growthShape(1000, { tags: 2400, bigTags: 600, hotRepos: 0, victims: 4 });

t.test('requests cost their answer, not the store', async (t) => {
  const started = Date.now();
  const since = () => ((Date.now() - started) / 1000).toFixed(1);
  const root = tempDir();
  const files = await writeLayoutToDirectory(root, layoutFiles(shape));
  t.ok(files > 10_000, `store written (${files} files) in ${since()} s`);
  // The change feed and the reconciliation read the store on timers: keep them out of the counts.
  const berth = await startBerth({
    root,
    env: { REGISTRY_BERTH_INDEX_POLLINTERVAL: '1h', REGISTRY_BERTH_INDEX_RECONCILEINTERVAL: '1h', REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' },
  });
  t.teardown(() => berth.stop());
  const c = new OciClient(berth.url);
  t.teardown(() => c.close());

  // First start over a store distribution wrote: the markers are derived in the background.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const r = await c.request('GET', '/readyz');
    const idx = JSON.parse(r.body.toString()).indexes;
    if (r.status === 200 && idx?.markers === 'complete' && idx.summarizing === 0) break;
    if (Date.now() > deadline) throw new Error(`indexes not warm after 2 min: ${r.body}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  t.comment(`indexes warm after ${since()} s`);

  const ops = async () => {
    const text = (await c.request('GET', '/metrics')).body.toString();
    let n = 0;
    for (const m of text.matchAll(/^berth_storage_operation_duration_seconds_count\{[^}]*\} (\d+)$/gm)) n += Number(m[1]);
    return n;
  };
  /** The request's status, body and storage operations. */
  const cost = async (method: string, path: string) => {
    const before = await ops();
    const r = await c.request(method, path);
    return { status: r.status, body: r.body.toString(), ops: (await ops()) - before };
  };

  let r = await cost('GET', '/v2/_catalog?n=100');
  t.equal(JSON.parse(r.body).repositories.length, 100);
  t.equal(r.ops, 0, 'catalog page: from the table in memory');
  r = await cost('GET', `/v2/_catalog?n=100&last=${repoName(shape, 900)}`);
  t.equal(JSON.parse(r.body).repositories[0], repoName(shape, 901));
  t.equal(r.ops, 0, 'deep catalog page: from the table in memory');
  for (const q of ['sort=name&order=asc', 'sort=size&order=desc', 'q=app0012']) {
    r = await cost('GET', `/berth/v1/repositories?${q}&limit=50`);
    t.equal(r.status, 200);
    t.equal(r.ops, 0, `/berth/v1/repositories?${q}: from the table in memory`);
  }

  const s = fixtureFacts.referrerSubject(shape);
  r = await cost('GET', `/v2/${s.repo}/referrers/${s.digest}`);
  t.equal(JSON.parse(r.body).manifests.length, 2);
  t.ok(r.ops <= 6, `referrers: the subject's own (${r.ops} operations)`);

  // Past the link cache's 1 s: what is still cheap is so without it.
  await new Promise((r) => setTimeout(r, 1100));
  r = await cost('GET', `/v2/${BIG_REPO}/tags/list?n=100`);
  t.equal(JSON.parse(r.body).tags.length, 100);
  t.ok(r.ops <= 2, `tag page of a ${shape.bigTags}-tag repository: a listing, tags known complete (${r.ops} operations)`);
  r = await cost('GET', `/v2/${BIG_REPO}/tags/list`);
  t.equal(JSON.parse(r.body).tags.length, shape.bigTags);
  t.ok(r.ops <= 2, `all ${shape.bigTags} tags: a listing, no tag's link read again (${r.ops} operations)`);

  for (const [what, digest] of [
    ['a layer most repositories share', fixtureFacts.sharedLayer()],
    ['a layer one repository links', fixtureFacts.uniqueLayer(shape, 800)],
  ]) {
    r = await cost('POST', `/v2/guard/mount-${digest.slice(7, 15)}/blobs/uploads/?mount=${digest}`);
    t.equal(r.status, 201, `mount without from: ${what}`);
    t.ok(r.ops <= 16, `mount without from, ${what}: its users, not every repository (${r.ops} operations)`);
  }

  const victim = fixtureFacts.victim(shape, 0);
  r = await cost('DELETE', `/v2/${BIG_REPO}/manifests/${victim.digest}`);
  t.equal(r.status, 202, 'delete by digest');
  t.ok(r.ops <= 30, `delete by digest: the image's tags, not every tag of the repository (${r.ops} operations)`);
  t.equal((await c.request('GET', `/v2/${BIG_REPO}/manifests/${victim.tag}`)).status, 404, 'its tag went with it');
});
