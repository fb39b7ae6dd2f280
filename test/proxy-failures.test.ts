// The pull-through cache when its upstream fails: killed in the middle of a
// blob (nothing corrupt is kept, the next pull succeeds once it is back), down
// after caching (cached tags keep serving, byte-identical; uncached content
// gets a clear 503; berth recovers by itself), and rate-limiting (429 passed on
// as TOOMANYREQUESTS with Retry-After, no upstream requests until then).
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { startBerth, tempDir, type Berth } from './helpers/berth';
import { startFront, type Front } from './helpers/front';
import { bufferSource, GeneratedBlob, hashStream, MANIFEST_ACCEPT, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, imageManifest, sha256 } from './helpers/oci-client';
import { scrape, waitFor } from './helpers/ops-client';
import { startTokenUpstream, type TokenUpstream } from './helpers/upstream';

const MiB = 1 << 20;
let up: TokenUpstream;
let front: Front;
let berth: Berth;

/** A one-layer image pushed to the upstream: its manifest, config and layer digests. */
async function seedImage(repo: string, tag: string, layerSize: number, seed: string) {
  const client = await up.pusher([repo]);
  const config = bufferSource(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = new GeneratedBlob(seed, layerSize);
  await client.pushBlob(repo, config);
  const pushed = await client.pushBlob(repo, layer);
  const manifest = imageManifest({ mediaType: OCI_CONFIG, digest: config.digest, size: config.size }, [{ mediaType: OCI_LAYER, digest: pushed.digest, size: layerSize }]);
  await client.putManifest(repo, tag, manifest, OCI_MANIFEST);
  client.close();
  return { manifest: sha256(manifest), config: config.digest, layer: pushed.digest };
}

const get = (p: string, headers: Record<string, string> = {}) => fetch(`${berth.url}/v2/${p}`, { headers: { accept: MANIFEST_ACCEPT, ...headers } });
const code = async (res: Response) => ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0];
const blobFile = (digest: string) => path.join(berth.root, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');

t.before(async () => {
  up = await startTokenUpstream();
  front = await startFront(up.url, { bytesPerSecond: 8 * MiB });
  const config = path.join(tempDir(), 'config.yml');
  fs.writeFileSync(config, ['berth:', '  proxies:', '    - prefix: hub', `      remoteurl: ${front.url}`, '      ttl: 1s', ''].join('\n'));
  berth = await startBerth({ config });
});
t.teardown(async () => {
  await Promise.all([berth?.stop(), up?.stop(), front?.close()]);
});

t.test('the upstream dies in the middle of a blob: nothing is kept, the next pull succeeds once it is back', async (t) => {
  const img = await seedImage('library/big', '1', 24 * MiB, 'big');
  t.equal((await get('hub/library/big/manifests/1')).status, 200);
  const res = await get(`hub/library/big/blobs/${img.layer}`);
  t.equal(res.status, 200, 'the blob starts streaming at once');
  t.equal(res.headers.get('content-length'), String(24 * MiB));
  const reading = hashStream(Readable.fromWeb(res.body as never)).then(
    () => 'complete',
    () => 'cut',
  );
  await new Promise((r) => setTimeout(r, 800));
  await up.kill();
  front.cut();
  t.equal(await reading, 'cut', "the client's transfer is cut, not ended as if complete");
  await waitFor('the broken upload to be dropped', () => !fs.existsSync(path.join(berth.root, 'docker/registry/v2/repositories/hub/library/big/_uploads')) || fs.readdirSync(path.join(berth.root, 'docker/registry/v2/repositories/hub/library/big/_uploads')).length === 0);
  t.notOk(fs.existsSync(blobFile(img.layer)), 'no blob data in the store');
  const down = await get(`hub/library/big/blobs/${img.layer}`);
  t.equal(down.status, 503, 'uncached content while the upstream is down: 503');
  const e = await code(down);
  t.equal(e.code, 'UNAVAILABLE');
  t.match(e.message, 'the upstream hub');

  await up.restart();
  let again: Response | undefined;
  await waitFor('a pull to succeed again', async () => (again = await get(`hub/library/big/blobs/${img.layer}`)).status === 200, 10_000, 500);
  t.equal((await hashStream(Readable.fromWeb(again!.body as never))).digest, img.layer, 'the whole blob, byte-identical');
  // The client has every byte before the store's commit (fsync, rename) ends.
  await waitFor('the blob to be committed', () => fs.existsSync(blobFile(img.layer)));
  t.pass('now cached');
});

t.test('the upstream down after caching: cached tags keep serving, uncached content gets 503, berth recovers', async (t) => {
  const img = await seedImage('library/small', 'v1', 64 << 10, 'small');
  const m = await get('hub/library/small/manifests/v1');
  const bytes = Buffer.from(await m.arrayBuffer());
  t.equal(sha256(bytes), img.manifest);
  for (const d of [img.config, img.layer]) t.equal((await get(`hub/library/small/blobs/${d}`)).status, 200);
  await up.kill();
  await new Promise((r) => setTimeout(r, 1100)); // past the ttl: the tag would be checked
  const stale = await get('hub/library/small/manifests/v1');
  t.equal(stale.status, 200, 'a cached tag is served while the upstream is down');
  t.ok(Buffer.from(await stale.arrayBuffer()).equals(bytes), 'byte-identical');
  for (const d of [img.config, img.layer]) {
    const b = await get(`hub/library/small/blobs/${d}`);
    t.equal(sha256(Buffer.from(await b.arrayBuffer())), d, `blob ${d.slice(7, 19)} from the store`);
  }
  const uncached = await get('hub/library/other/manifests/1');
  t.equal(uncached.status, 503);
  t.equal((await code(uncached)).code, 'UNAVAILABLE');
  t.match(berth.output(), 'serving a cached tag without checking it', 'logged');
  const metrics = await scrape(`${berth.url}/metrics`);
  t.ok((metrics.get('berth_proxy_lookups_total{upstream="hub",kind="manifest",result="stale"}') ?? 0) >= 1, 'counted as stale');
  t.ok((metrics.get('berth_proxy_upstream_errors_total{upstream="hub",reason="unavailable"}') ?? 0) >= 1, 'upstream errors counted');

  await up.restart();
  const moved = await seedImage('library/small', 'v1', 64 << 10, 'small-2');
  await waitFor('the moved tag to be seen', async () => (await get('hub/library/small/manifests/v1')).headers.get('docker-content-digest') === moved.manifest, 30_000, 500);
  t.pass('berth recovered by itself and sees the tag moved upstream');
});

t.test("the upstream's 429 becomes TOOMANYREQUESTS with Retry-After, and berth waits before asking again", async (t) => {
  const img = await seedImage('library/limited', '1', 4096, 'limited');
  t.equal((await get('hub/library/limited/manifests/1')).status, 200, 'cached before the limit');
  await new Promise((r) => setTimeout(r, 1100));
  front.rateLimit(1, 3);
  const stale = await get('hub/library/limited/manifests/1');
  t.equal(stale.status, 200, 'a cached tag is served stale while rate-limited');
  const before = front.forwarded;
  const limited = await get(`hub/library/limited/blobs/${img.layer}`);
  t.equal(limited.status, 429, 'uncached content: 429');
  t.equal((await code(limited)).code, 'TOOMANYREQUESTS');
  const wait = Number(limited.headers.get('retry-after'));
  t.ok(wait >= 1 && wait <= 3, `Retry-After ${wait} s counts down from the upstream's 3`);
  t.equal(front.forwarded, before, 'no request reached the upstream while it asked us to wait');
  await new Promise((r) => setTimeout(r, wait * 1000 + 100));
  const after = await get(`hub/library/limited/blobs/${img.layer}`);
  t.equal(after.status, 200, 'after Retry-After, pulls go through again');
  t.equal(sha256(Buffer.from(await after.arrayBuffer())), img.layer);
  const metrics = await scrape(`${berth.url}/metrics`);
  t.ok((metrics.get('berth_proxy_upstream_errors_total{upstream="hub",reason="ratelimited"}') ?? 0) >= 1, 'counted');
});

t.test("the upstream's RateLimit-Remaining is exported, and at 0 berth waits for the reset instead of earning a 429", async (t) => {
  const img = await seedImage('library/counted', '1', 4096, 'counted');
  front.addHeaders({ 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600', 'ratelimit-reset': '2' });
  t.equal((await get('hub/library/counted/manifests/1')).status, 200, 'the last request the quota allows');
  front.addHeaders(undefined);
  const metrics = await scrape(`${berth.url}/metrics`);
  t.equal(metrics.get('berth_proxy_upstream_ratelimit_remaining{upstream="hub"}'), 0, 'exported');
  const before = front.forwarded;
  const waiting = await get(`hub/library/counted/blobs/${img.layer}`);
  t.equal(waiting.status, 429);
  t.ok(Number(waiting.headers.get('retry-after')) <= 2, 'Retry-After from the reset');
  t.equal(front.forwarded, before, 'nothing sent upstream until the reset');
  await new Promise((r) => setTimeout(r, 2100));
  t.equal((await get(`hub/library/counted/blobs/${img.layer}`)).status, 200, 'then pulls go on');
});

t.test('shutdown during a fill whose client left: berth stops the fill, leaves no upload behind and exits 0', async (t) => {
  const img = await seedImage('library/shutdown', '1', 24 * MiB, 'shutdown');
  const config = path.join(tempDir(), 'config.yml');
  fs.writeFileSync(config, ['berth:', '  proxies:', '    - prefix: hub', `      remoteurl: ${front.url}`, ''].join('\n'));
  const b = await startBerth({ config, env: { REGISTRY_HTTP_DRAINTIMEOUT: '1s' } });
  const client = new AbortController();
  const res = await fetch(`${b.url}/v2/hub/library/shutdown/blobs/${img.layer}`, { signal: client.signal });
  t.equal(res.status, 200);
  await new Promise((r) => setTimeout(r, 500));
  client.abort(); // the fill goes on without its client
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  t.equal(await b.stop(), 0, 'exit 0');
  t.ok(Date.now() - t0 < 10_000, 'without waiting for the whole blob');
  const uploads = path.join(b.root, 'docker/registry/v2/repositories/hub/library/shutdown/_uploads');
  t.same(fs.existsSync(uploads) ? fs.readdirSync(uploads) : [], [], 'no upload session left');
  t.notOk(fs.existsSync(path.join(b.root, 'docker/registry/v2/blobs/sha256', img.layer.slice(7, 9), img.layer.slice(7))), 'no blob');
});
