// berth on S3 (Swift s3api): stateless replicas on one bucket, a replica
// killed mid-upload, the store going away and coming back, presigned
// redirects, and catalog paging at 2,000 repositories.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { S3Driver } from '../storage/drivers/s3';
import { startBerth, tempDir, type Berth } from './helpers/berth';
import { scrape, waitFor } from './helpers/ops-client';
import { haveDistribution, startDistribution } from './helpers/distribution';
import { blob as blobOf, finishUpload as finish, patchUpload as patch, pushImage, randomBlob, sha256 as digestOf, startUpload, verifyPull } from './helpers/registry-client';
import { startS3, type S3Server } from './helpers/s3';

const MiB = 1024 * 1024;
let s3: S3Server;
const started: Berth[] = [];

t.before(async () => {
  s3 = await startS3();
});
t.teardown(async () => {
  for (const b of started) await b.kill();
  await s3?.stop();
});

/** A berth replica on the shared bucket under `root`. */
async function replica(root: string, env: Record<string, string> = {}): Promise<Berth> {
  const b = await startBerth({
    env: s3.env({
      REGISTRY_STORAGE_S3_ROOTDIRECTORY: root,
      REGISTRY_STORAGE_S3_CHUNKSIZE: String(5 * MiB),
      // Fail fast when the store is gone (the defaults are 60 s and 5 attempts).
      REGISTRY_STORAGE_S3_OPERATIONTIMEOUT: '3s',
      REGISTRY_STORAGE_S3_CONNECTTIMEOUT: '1s',
      REGISTRY_STORAGE_S3_MAXATTEMPTS: '2',
      REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false',
      ...env,
    }),
  });
  started.push(b);
  return b;
}

t.test('two replicas on one bucket: an upload begun on one is finished on the other', async (t) => {
  const a = await replica('/replicas');
  const b = await replica('/replicas', { REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' });
  const blob = randomBytes(12 * MiB + 321);
  const cut = [3 * MiB, 7 * MiB + 5];
  const loc = await startUpload(a.url, 'team/app');
  let res = await patch(a.url, loc, blob.subarray(0, cut[0]), 0);
  t.equal(res.status, 202, 'PATCH 1 on A');
  res = await patch(b.url, loc, blob.subarray(cut[0], cut[1]), cut[0]);
  t.equal(res.status, 202, 'PATCH 2 on B');
  t.equal(res.headers.get('range'), `0-${cut[1] - 1}`, 'B reports every byte so far');
  const status = await fetch(a.url + loc);
  t.equal(status.headers.get('range'), `0-${cut[1] - 1}`, 'A sees what B wrote');
  res = await patch(a.url, loc, blob.subarray(cut[1]), cut[1]);
  t.equal(res.status, 202, 'PATCH 3 on A (its running hash is stale: it must re-hash)');
  res = await finish(b.url, loc, digestOf(blob));
  t.equal(res.status, 201, 'PUT on B');
  t.equal(res.headers.get('docker-content-digest'), digestOf(blob));

  const image = await pushImage(a.url, 'team/app', 'v1', blobOf('{"architecture":"amd64","os":"linux"}'), [blobOf(blob)]);
  const m = await fetch(`${b.url}/v2/team/app/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  t.equal(m.status, 200, 'manifest pushed on A is served by B');
  t.equal(m.headers.get('docker-content-digest'), image.digest);
  await m.arrayBuffer();

  const redirect = await fetch(`${a.url}/v2/team/app/blobs/${digestOf(blob)}`, { redirect: 'manual' });
  t.equal(redirect.status, 307, 'A redirects blob GETs');
  const location = redirect.headers.get('location')!;
  t.match(location, new RegExp(`^${s3.endpoint}/${s3.bucket}/replicas/docker/registry/v2/blobs/sha256/`), 'to the store');
  t.match(location, /X-Amz-Signature=/, 'presigned');
  const direct = await fetch(location);
  t.equal(digestOf(Buffer.from(await direct.arrayBuffer())), digestOf(blob), 'the presigned URL serves the blob');
  const streamed = await fetch(`${b.url}/v2/team/app/blobs/${digestOf(blob)}`, { redirect: 'manual' });
  t.equal(streamed.status, 200, 'B (redirect disabled) streams');
  t.equal(digestOf(Buffer.from(await streamed.arrayBuffer())), digestOf(blob));
  const ranged = await fetch(`${b.url}/v2/team/app/blobs/${digestOf(blob)}`, { headers: { range: `bytes=${5 * MiB - 2}-${5 * MiB + 1}` } });
  t.equal(ranged.status, 206);
  t.same(Buffer.from(await ranged.arrayBuffer()), blob.subarray(5 * MiB - 2, 5 * MiB + 2), 'Range read from S3');
});

t.test('a monolithic PUT writes the blob in place (no copy); a wrong digest leaves nothing; racing pushes of one blob both land', async (t) => {
  const a = await replica('/direct', { REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' });
  const b = await replica('/direct', { REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' });
  const probe = new S3Driver(s3.options({ rootdirectory: '/direct' }));
  t.teardown(() => probe.close());
  const ops = async (r: Berth, operation: string) => {
    const text = await (await fetch(`${r.url}/metrics`)).text();
    return Number(new RegExp(`berth_storage_operation_duration_seconds_count\\{driver="s3",operation="${operation}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  };
  const put = async (r: Berth, repo: string, data: Buffer, digest = digestOf(data)) => finish(r.url, await startUpload(r.url, repo), digest, data);
  const blob = randomBytes(12 * MiB + 7);
  const [one, two] = await Promise.all([put(a, 'direct/one', blob), put(b, 'direct/two', blob)]);
  t.same([one.status, two.status], [201, 201], 'two replicas push the same blob at once');
  for (const [r, repo] of [[a, 'direct/one'], [b, 'direct/two']] as const) {
    const got = await fetch(`${r.url}/v2/${repo}/blobs/${digestOf(blob)}`);
    t.equal(digestOf(Buffer.from(await got.arrayBuffer())), digestOf(blob), `${repo} serves it`);
  }
  t.same([await ops(a, 'atomicWriter'), await ops(b, 'atomicWriter')], [1, 1], 'each wrote straight to the blob');
  t.same([await ops(a, 'move'), await ops(b, 'move')], [0, 0], 'no upload data was copied into place');

  const wrong = randomBytes(6 * MiB);
  const bad = await put(a, 'direct/one', wrong, digestOf(randomBytes(8)));
  t.equal(bad.status, 400, 'a wrong digest is refused');
  t.equal((await bad.json()).errors[0].code, 'DIGEST_INVALID');
  t.same(await probe.uploadsOf(probe.key('/docker/registry/v2'), false), [], 'no multipart upload left anywhere');
  const absent = await fetch(`${a.url}/v2/direct/one/blobs/${digestOf(wrong)}`, { method: 'HEAD' });
  t.equal(absent.status, 404, 'and nothing of it is visible');
});

t.test('a blob cache on local disk: reads after the first come from it; rights stay with the links', async (t) => {
  const dir = tempDir('berth-s3-blobcache-');
  const env = {
    REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
    REGISTRY_STORAGE_DELETE_ENABLED: 'true',
    REGISTRY_BERTH_BLOBCACHE_ROOTDIRECTORY: dir,
    REGISTRY_BERTH_BLOBCACHE_MAXSIZE: String(256 * MiB),
  };
  let r = await replica('/cached', env);
  const data = randomBytes(9 * MiB + 3);
  const digest = digestOf(data);
  t.equal((await finish(r.url, await startUpload(r.url, 'cached/one'), digest, data)).status, 201);
  const url = (repo: string) => `${r.url}/v2/${repo}/blobs/${digest}`;
  const get = async (repo: string, headers: Record<string, string> = {}) => {
    const res = await fetch(url(repo), { headers });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  };
  const lookups = async (result: string) => (await scrape(`${r.url}/metrics`)).get(`berth_cache_lookups_total{cache="blobdata",result="${result}"}`) ?? 0;

  t.ok((await get('cached/one')).body.equals(data), 'the first read streams from the bucket');
  const file = path.join(dir, 'sha256', digest.slice(7, 9), digest.slice(7));
  await waitFor('the cache entry', () => fs.existsSync(file));
  t.ok((await get('cached/one')).body.equals(data), 'the second read is the same bytes');
  t.same([await lookups('miss'), await lookups('hit')], [1, 1], 'and came from the cache');
  const part = await get('cached/one', { Range: 'bytes=100-1099' });
  t.same([part.status, part.body.equals(data.subarray(100, 1100))], [206, true], 'ranges from the cache');

  t.equal((await get('cached/other')).status, 404, 'a repository that does not link the blob cannot read it from the cache');
  await r.stop();
  r = await replica('/cached', env); // a restart adopts the entry
  t.ok((await get('cached/one')).body.equals(data), 'after a restart');
  t.equal(await lookups('hit'), 1, 'still from the cache');
  t.equal((await fetch(url('cached/one'), { method: 'DELETE' })).status, 202);
  t.equal((await get('cached/one')).status, 404, 'a blob deleted from the repository is gone, cached or not');
});

t.test('a collector removing a blob while a monolithic PUT of it streams: a JSON 400, not a 500, and the blob is gone', async (t) => {
  const a = await replica('/swept', { REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' });
  const probe = new S3Driver(s3.options({ rootdirectory: '/swept' }));
  t.teardown(() => probe.close());
  const blob = randomBytes(12 * MiB);
  const hex = digestOf(blob).slice(7);
  const blobDir = `/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}`;
  const loc = new URL(a.url + (await startUpload(a.url, 'swept/app')));
  loc.searchParams.set('digest', digestOf(blob));
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(loc, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': blob.length } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    // the answer may come while the body is still being sent (the server stops at the failed part)
    req.on('error', (e) => setTimeout(() => reject(e), 200));
    req.write(blob.subarray(0, 7 * MiB));
    // once the direct write has a part at the blob's key, sweep it as a collector would
    (async () => {
      await waitFor('a part at the blob key', async () => (await probe.uploadsOf(probe.key(`${blobDir}/data`), true)).length > 0, 5000);
      await probe.delete(blobDir);
      req.end(blob.subarray(7 * MiB));
    })().catch(reject);
  });
  const res = await answer;
  t.equal(res.status, 400, 'refused, not a 500');
  t.equal(JSON.parse(res.body).errors[0].code, 'BLOB_UPLOAD_INVALID', res.body);
  const head = await fetch(`${a.url}/v2/swept/app/blobs/${digestOf(blob)}`, { method: 'HEAD' });
  t.equal(head.status, 404, 'nothing half-written is visible');
  const again = await finish(a.url, await startUpload(a.url, 'swept/app'), digestOf(blob), blob);
  t.equal(again.status, 201, 'pushing it again works');
});

t.test('a replica killed mid-upload: the upload continues on another', async (t) => {
  const a = await replica('/killed');
  const b = await replica('/killed', { REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' });
  const blob = randomBytes(11 * MiB);
  const loc = await startUpload(a.url, 'victim');
  const probe = new S3Driver(s3.options({ rootdirectory: '/killed' }));
  t.teardown(() => probe.close());
  const dataKey = probe.key(`/docker/registry/v2/repositories/victim/_uploads/${loc.split('/').pop()!.split('?')[0]}/data`);

  // Stream a PATCH to A and kill A once a part has reached the store.
  const u = new URL(a.url + loc);
  const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } });
  req.on('error', () => undefined);
  req.write(blob.subarray(0, 7 * MiB));
  let parts = 0;
  await waitFor(
    'a stored part',
    async () => {
      const [up] = await probe.uploadsOf(dataKey, true);
      if (up) parts = (await probe.openWrite(dataKey)).parts.length;
      return parts > 0;
    },
    10_000,
    100,
  );
  t.equal(parts, 1, 'a part was stored');
  await a.kill();
  req.destroy();

  const status = await fetch(b.url + loc);
  t.equal(status.status, 204, 'B knows the upload');
  const range = status.headers.get('range')!;
  const stored = Number(range.split('-')[1]) + 1;
  t.equal(stored, 5 * MiB, 'B reports what reached the store');
  const res = await patch(b.url, loc, blob.subarray(stored), stored);
  t.equal(res.status, 202, 'the client resumes on B from there');
  const done = await finish(b.url, loc, digestOf(blob));
  t.equal(done.status, 201, 'and completes it');
  const got = await fetch(`${b.url}/v2/victim/blobs/${digestOf(blob)}`);
  t.equal(digestOf(Buffer.from(await got.arrayBuffer())), digestOf(blob), 'blob intact');
  t.same(await probe.uploadsOf(dataKey, true), [], 'no multipart upload left behind');
});

t.test('store unreachable or stalled: 503 with a JSON error, readiness says so, recovery on its own', async (t) => {
  const a = await replica('/faults', { REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' });
  const blob = randomBytes(1000);
  await pushImage(a.url, 'faulty', 'v1', blobOf(blob), []);
  const blobURL = `${a.url}/v2/faulty/blobs/${digestOf(blob)}`;
  t.equal((await fetch(`${a.url}/readyz`)).status, 200, 'ready');

  const expect503 = async (what: string, init?: RequestInit, url = blobURL) => {
    const t0 = Date.now();
    const res = await fetch(url, init);
    const body = await res.json().catch(() => undefined);
    t.equal(res.status, 503, `${what}: 503 (${Date.now() - t0} ms)`);
    t.match(body, { errors: [{ code: 'UNAVAILABLE' }] }, `${what}: JSON error`);
    t.ok(Date.now() - t0 < 15_000, `${what}: no hang`);
  };

  await s3.stopProxy();
  await expect503('blob GET, store down');
  await expect503('upload POST, store down', { method: 'POST' }, `${a.url}/v2/faulty/blobs/uploads/`);
  await expect503('manifest GET, store down', undefined, `${a.url}/v2/faulty/manifests/${digestOf(blob)}`);
  const ready = await fetch(`${a.url}/readyz`);
  t.equal(ready.status, 503, 'readyz reports the store');
  t.match(await ready.json(), { status: 'not ready', reason: /storage/ });
  await s3.startProxy();
  let ok = false;
  await waitFor('readyz after the store is back', async () => (ok = (await fetch(`${a.url}/readyz`)).status === 200), 10_000, 200);
  t.ok(ok, 'ready again once the store is back');
  const back = await fetch(blobURL);
  t.equal(back.status, 200, 'serves again without a restart');
  t.equal(digestOf(Buffer.from(await back.arrayBuffer())), digestOf(blob));

  s3.freeze();
  try {
    await expect503('blob GET, store stalled');
  } finally {
    s3.thaw();
  }
  t.equal((await fetch(blobURL)).status, 200, 'recovers after the stall');
});

t.test('distribution 2.8.2 and berth serve one bucket', { skip: !haveDistribution() && !process.env.CI && 'docker-registry not installed' }, async (t) => {
  const root = '/shared-with-distribution';
  // A repository distribution creates reaches berth's list at its next reconcile with the store.
  const berth = await replica(root, { REGISTRY_STORAGE_REDIRECT_DISABLE: 'true', REGISTRY_BERTH_INDEX_RECONCILEINTERVAL: '300ms' });
  const dist = await startDistribution({
    storageYaml: s3.distributionStorage(root),
  });
  t.teardown(() => dist.stop());
  const fromBerth = await pushImage(berth.url, 'pushed/by-berth', 'v1', randomBlob(200), [randomBlob(6 * MiB + 1)]);
  t.same(await verifyPull(dist.url, fromBerth), [], 'distribution pulls what berth pushed');
  const fromDist = await pushImage(dist.url, 'pushed/by-distribution', 'v1', randomBlob(200), [randomBlob(6 * MiB + 1)]);
  t.same(await verifyPull(berth.url, fromDist), [], 'berth pulls what distribution pushed');
  const catalog = async () => ((await (await fetch(`${berth.url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories;
  await waitFor('berth to list what distribution created', async () => (await catalog()).length === 2, 10_000);
  t.same(await catalog(), ['pushed/by-berth', 'pushed/by-distribution'], 'berth lists both');
});

t.test('catalog paging at 2,000 repositories', async (t) => {
  const root = '/catalog';
  const d = new S3Driver(s3.options({ rootdirectory: root }));
  t.teardown(() => d.close());
  const n = 2000;
  const names = Array.from({ length: n }, (_, i) => `org${i % 20}/repo-${String(i).padStart(4, '0')}`);
  const link = Buffer.from(digestOf(Buffer.from('layer')));
  const t0 = Date.now();
  let next = 0;
  // A layer link per repository, as a push would write (distribution's layout).
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < n) {
      const name = names[next++];
      await d.putContent(`/docker/registry/v2/repositories/${name}/_layers/sha256/${link.toString().slice(7)}/link`, link);
    }
  }));
  t.comment(`seeded ${n} repositories in ${Date.now() - t0} ms`);
  const a = await replica(root);
  const sorted = [...names].sort();
  const timings: number[] = [];
  const seen: string[] = [];
  let url: string | undefined = `${a.url}/v2/_catalog?n=100`;
  while (url) {
    const s = Date.now();
    const res: Response = await fetch(url);
    const body = (await res.json()) as { repositories: string[] };
    if (res.status !== 200) throw new Error(`catalog: ${res.status} ${JSON.stringify(body)}`);
    timings.push(Date.now() - s);
    seen.push(...body.repositories);
    const linkHeader = res.headers.get('link');
    url = linkHeader ? a.url + /<([^>]+)>/.exec(linkHeader)![1] : undefined;
  }
  t.same(seen, sorted, 'every repository once, in order');
  const first = timings[0];
  const rest = timings.slice(1).sort((x, y) => x - y);
  t.comment(`catalog n=100 at ${n} repositories: first page ${first} ms, later pages median ${rest[rest.length >> 1]} ms, max ${rest[rest.length - 1]} ms, ${timings.length} pages`);
  const again = Date.now();
  await (await fetch(`${a.url}/v2/_catalog?n=100&last=${encodeURIComponent(sorted[1500])}`)).json();
  t.comment(`a page deep in the catalog (last=${sorted[1500]}): ${Date.now() - again} ms`);
});
