// Cached content is garbage like any other: a scheduled GC run expires images
// of a cache not pulled for its `expire`, then the least recently pulled ones
// while the cache holds more than its `maxsize`, and collects their blobs.
// Pull times are recorded in batches in the store: a first berth serves the
// pulls and stops (writing its last batch); a second one, on the same store,
// runs the collection. Rather than wait an hour, the test makes one image's
// pull times an hour older in the store.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startBerth, tempDir, type Berth } from './helpers/berth';
import { bufferSource, GeneratedBlob, imageManifest, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, OciClient, sha256 } from './helpers/oci-client';
import { waitFor } from './helpers/ops-client';
import { startTokenUpstream, type TokenUpstream } from './helpers/upstream';

const MiB = 1 << 20;
let up: TokenUpstream;
const root = tempDir();
const config = path.join(tempDir(), 'config.yml');
const v2 = path.join(root, 'docker/registry/v2');
const images = new Map<string, { manifest: string; layer: string }>();

const start = (env: Record<string, string>) => startBerth({ root, config, env: { REGISTRY_BERTH_GC_ENABLED: 'true', REGISTRY_BERTH_GC_MINAGE: '0s', ...env } });
const revision = (repo: string, digest: string) => path.join(v2, 'repositories', repo, '_manifests/revisions/sha256', digest.slice(7));
const blobData = (digest: string) => path.join(v2, 'blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');

/** Pull the whole image (manifest by tag, then its blobs) through berth. */
async function pull(url: string, repo: string): Promise<void> {
  const c = new OciClient(url);
  const m = await c.getManifest(repo, '1');
  if (m.status !== 200) throw new Error(`${repo}: ${m.status} ${m.body}`);
  const doc = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) {
    const b = await c.pullBlob(repo, d);
    if (b.digest !== d) throw new Error(`${repo}: blob ${d} came back as ${b.digest}`);
  }
  c.close();
}

t.before(async () => {
  up = await startTokenUpstream();
  for (const name of ['a', 'b', 'c', 'd', 'e']) {
    const repo = `library/${name}`;
    const c = await up.pusher([repo]);
    const cfg = bufferSource(JSON.stringify({ architecture: 'amd64', os: 'linux', name }));
    const layer = await c.pushBlob(repo, new GeneratedBlob(`gc-${name}`, MiB));
    await c.pushBlob(repo, cfg);
    const manifest = imageManifest({ mediaType: OCI_CONFIG, digest: cfg.digest, size: cfg.size }, [{ mediaType: OCI_LAYER, digest: layer.digest, size: MiB }]);
    await c.putManifest(repo, '1', manifest, OCI_MANIFEST);
    images.set(name, { manifest: sha256(manifest), layer: layer.digest });
    c.close();
  }
  fs.writeFileSync(
    config,
    [
      'berth:',
      '  proxies:',
      '    - prefix: cap',
      `      remoteurl: ${up.url}`,
      `      maxsize: ${Math.floor(2.5 * MiB)}`,
      '      expire: 0s',
      '    - prefix: old',
      `      remoteurl: ${up.url}`,
      '      expire: 1h',
      '',
    ].join('\n'),
  );
});
t.teardown(() => up?.stop());

t.test('expired and least recently pulled images go at the next GC run', async (t) => {
  // The serving replica: GC on (pull times are recorded for it), but not due during the test.
  const serving: Berth = await start({ REGISTRY_BERTH_GC_INTERVAL: '24h' });
  for (const name of ['a', 'b', 'c']) await pull(serving.url, `cap/library/${name}`);
  await pull(serving.url, 'cap/library/a'); // a is now the most recently pulled
  for (const name of ['d', 'e']) await pull(serving.url, `old/library/${name}`);
  t.equal(await serving.stop(), 0, 'the serving replica stops (and writes its last pull times)');
  const batches = path.join(v2, '_berth/proxy/pulls');
  t.ok(fs.readdirSync(batches).length >= 1, 'pull times are in the store, in batches');
  // Two hours pass for d: its pull times, and the time it was cached.
  const past = Date.now() - 2 * 3600_000;
  for (const f of fs.readdirSync(batches)) {
    const pulls = JSON.parse(fs.readFileSync(path.join(batches, f), 'utf8')) as Record<string, number>;
    for (const k of Object.keys(pulls)) if (k.startsWith('old/library/d@')) pulls[k] = past;
    fs.writeFileSync(path.join(batches, f), JSON.stringify(pulls));
  }
  fs.utimesSync(path.join(revision('old/library/d', images.get('d')!.manifest), 'link'), past / 1000, past / 1000);

  const collector = await start({ REGISTRY_BERTH_GC_INTERVAL: '1s', REGISTRY_LOG_LEVEL: 'info' });
  t.teardown(() => collector.stop());
  await waitFor('a GC run after the expiry', () => /pull-through cache expiry[\s\S]*"msg":"gc"/.test(collector.output()), 20_000, 200);
  const report = JSON.parse(collector.output().split('\n').find((l) => l.includes('pull-through cache expiry'))!);
  t.match(report, { expired: 1, overCap: 1, tags: 2 }, 'd expired, b over the cap');
  t.ok(report.bytes >= 2 * MiB, 'their blobs counted as freed');

  const gone = (name: string, repo: string) => !fs.existsSync(revision(repo, images.get(name)!.manifest)) && !fs.existsSync(blobData(images.get(name)!.layer));
  const kept = (name: string, repo: string) => fs.existsSync(revision(repo, images.get(name)!.manifest)) && fs.existsSync(blobData(images.get(name)!.layer));
  t.ok(gone('b', 'cap/library/b'), 'cap: b, the least recently pulled, is gone with its layer');
  t.ok(kept('a', 'cap/library/a') && kept('c', 'cap/library/c'), 'cap: a and c stay (2 MiB, under the 2.5 MiB cap)');
  t.ok(gone('d', 'old/library/d'), 'old: d, not pulled for 2 h, is gone');
  t.ok(kept('e', 'old/library/e'), 'old: e, pulled just now, stays');
  t.notOk(fs.existsSync(path.join(v2, 'repositories/cap/library/b/_manifests/tags/1')), "b's tag is gone");
  t.same(fs.readdirSync(path.join(v2, '_berth/proxy/pulls')), [], 'the batches were folded into one summary');
  t.ok(fs.existsSync(path.join(v2, '_berth/proxy/pulled')));

  await pull(collector.url, 'cap/library/b');
  t.pass('an expired image is fetched again on its next pull');
});
