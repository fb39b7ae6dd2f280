// Two berth replicas on one S3 bucket (Swift s3api), both caching the same
// upstream, pull the same image at once: each blob is fetched from the
// upstream once (counted in the upstream's access log); the other replica
// waits for it in the store and serves it from there.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startBerth, tempDir, type Berth } from './helpers/berth';
import { startFront, type Front } from './helpers/front';
import { S3Driver } from '../storage/drivers/s3';
import { paths } from '../storage/paths';
import { listOrEmpty } from '../storage/repositories';
import { bufferSource, GeneratedBlob, imageManifest, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, OciClient, sha256 } from './helpers/oci-client';
import { startS3, type S3Server } from './helpers/s3';
import { startTokenUpstream, type TokenUpstream } from './helpers/upstream';

const MiB = 1 << 20;
let s3: S3Server;
let up: TokenUpstream;
let front: Front;
const replicas: Berth[] = [];

t.before(async () => {
  [s3, up] = await Promise.all([startS3(), startTokenUpstream()]);
  // A link slow enough that the replicas' requests overlap the fetches.
  front = await startFront(up.url, { bytesPerSecond: 32 * MiB });
  const config = path.join(tempDir(), 'config.yml');
  fs.writeFileSync(config, ['berth:', '  proxies:', '    - prefix: hub', `      remoteurl: ${front.url}`, ''].join('\n'));
  for (let i = 0; i < 2; i++) {
    replicas.push(await startBerth({ config, env: s3.env({ REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/proxy', REGISTRY_STORAGE_REDIRECT_DISABLE: 'true', REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false' }) }));
  }
});
t.teardown(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await Promise.all([up?.stop(), front?.close(), s3?.stop()]);
});

t.test('two replicas pulling one image at once make one upstream fetch per blob', async (t) => {
  const repo = 'library/shared';
  const pusher = await up.pusher([repo]);
  const config = bufferSource(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layers = [new GeneratedBlob('s3-a', 6 * MiB), new GeneratedBlob('s3-b', 9 * MiB), new GeneratedBlob('s3-c', 64 << 10)];
  await pusher.pushBlob(repo, config);
  const descs = [];
  for (const l of layers) descs.push({ mediaType: OCI_LAYER, digest: (await pusher.pushBlob(repo, l)).digest, size: l.size });
  const manifest = imageManifest({ mediaType: OCI_CONFIG, digest: config.digest, size: config.size }, descs);
  await pusher.putManifest(repo, '1', manifest, OCI_MANIFEST);
  pusher.close();

  const clients = replicas.map((r) => new OciClient(r.url));
  const manifests = await Promise.all(clients.map((c) => c.getManifest(`hub/${repo}`, '1')));
  for (const m of manifests) t.equal(sha256(m.body), sha256(manifest), 'the manifest, byte-identical, from both');
  const digests = [config.digest, ...descs.map((d) => d.digest)];
  // Every blob asked of both replicas at the same moment, all blobs at once.
  const pulls = await Promise.all(digests.flatMap((d) => clients.map((c) => c.pullBlob(`hub/${repo}`, d).then((r) => ({ d, ...r })))));
  for (const p of pulls) t.same([p.status, p.digest], [200, p.d], `blob ${p.d.slice(7, 19)}: whole and verified`);
  for (const d of digests) t.equal(await up.count('GET', new RegExp(`^/v2/${repo}/blobs/${d}$`)), 1, `blob ${d.slice(7, 19)} fetched from the upstream once`);
  // And from the store afterwards, on both.
  for (const c of clients) t.equal((await c.pullBlob(`hub/${repo}`, descs[1].digest)).digest, descs[1].digest);
  t.equal(await up.count('GET', new RegExp(`^/v2/${repo}/blobs/`)), digests.length, 'no further fetches');
  for (const c of clients) c.close();
  const driver = new S3Driver(s3.options({ rootdirectory: '/proxy' }));
  t.same(await listOrEmpty(driver, `${paths.root}/_berth/proxy/fills`), [], 'every fill lease released');
  await driver.close();
});
