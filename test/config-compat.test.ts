// distribution keys berth implements for a drop-in replacement, against a real
// berth: http.prefix (served under a path, Location and Link headers carry it)
// and validation.manifests.urls (foreign-layer URLs allowed or denied).
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startBerth, tempDir } from './helpers/berth';
import { OCI_CONFIG, OCI_MANIFEST } from './helpers/oci-client';
import { pushBlob, pushImage, randomBlob, sha256, verifyPull, type Blob } from './helpers/registry-client';

function configFile(yaml: string): string {
  const file = path.join(tempDir('berth-compat-'), 'config.yml');
  fs.writeFileSync(file, yaml);
  return file;
}

t.test('http.prefix: served under the prefix, and the URLs it sends carry it', async (t) => {
  const b = await startBerth({ config: configFile('http:\n  prefix: /registry/\n') });
  t.teardown(() => b.stop());
  const base = `${b.url}/registry`;
  t.equal((await fetch(`${base}/v2/`)).status, 200, '/registry/v2/ is the API root');

  const start = await fetch(`${base}/v2/team/app/blobs/uploads/`, { method: 'POST' });
  t.equal(start.status, 202);
  t.match(start.headers.get('location'), new RegExp(`^${base}/v2/team/app/blobs/uploads/`), 'the upload Location is under the prefix');
  await start.arrayBuffer();

  // A client that only knows the prefixed URL pushes and pulls through it (following each Location).
  const img = await pushImage(base, 'team/app', 'v1', randomBlob(100), [randomBlob(5000)]);
  t.same(await verifyPull(base, img), [], 'pull through the prefix');
  await pushImage(base, 'team/app', 'v2', randomBlob(100), [randomBlob(10)]);
  const tags = await fetch(`${base}/v2/team/app/tags/list?n=1`);
  t.equal(tags.headers.get('link'), '</registry/v2/team/app/tags/list?n=1&last=v1>; rel="next"', 'the Link header is under the prefix');
  await tags.arrayBuffer();
});

t.test('validation.manifests.urls: foreign-layer URLs must be allowed and not denied', async (t) => {
  const b = await startBerth({
    config: configFile(`validation:
  manifests:
    urls:
      allow:
        - ^https?://([^/]+\\.)*example\\.com/
      deny:
        - ^https?://forbidden\\.example\\.com/
`),
  });
  t.teardown(() => b.stop());
  const config = randomBlob(100);
  const layer = randomBlob(1000);
  for (const blob of [config, layer]) await pushBlob(b.url, 'win/app', blob);
  const put = async (urls: string[]) => {
    const foreign = { mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', digest: sha256(`foreign ${urls}`), size: 1234, urls };
    const desc = (mediaType: string, x: Blob) => ({ mediaType, digest: x.digest, size: x.bytes.length });
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: desc(OCI_CONFIG, config), layers: [desc('application/vnd.oci.image.layer.v1.tar', layer), foreign] }));
    const res = await fetch(`${b.url}/v2/win/app/manifests/${sha256(manifest)}`, { method: 'PUT', body: new Uint8Array(manifest), headers: { 'content-type': OCI_MANIFEST } });
    return { status: res.status, body: (await res.json().catch(() => undefined)) as { errors?: { code: string; detail: unknown }[] } | undefined };
  };
  t.equal((await put(['https://go.microsoft.example.com/layer.tar.gz'])).status, 201, 'an allowed URL');
  for (const url of ['https://elsewhere.test/layer.tar.gz', 'https://forbidden.example.com/layer.tar.gz', 'ftp://files.example.com/layer.tar.gz']) {
    const r = await put([url]);
    t.equal(r.status, 400, `refused: ${url}`);
    t.match(r.body, { errors: [{ code: 'MANIFEST_INVALID', detail: { url } }] });
  }
});
