// Pull: blobs and manifests by tag and digest, ranges, negotiation, and the
// 404s of content that is absent or belongs to another repository.
import type { Expect } from './check';
import { INVALID_REFERENCE, MT, descriptor, imageConfig, ociManifest, randomBlob, unknownDigest, type Blob, type Manifest } from './content';
import { SetupError, Suite } from './suite';
import { describe, type Resp } from './client';

const C = 'pull';

/** A 200 manifest answer carrying exactly the pushed bytes, type and digest. */
export function expectManifest(e: Expect, res: Resp, m: Manifest): void {
  e.status(res, 200);
  if (res.method === 'GET') e.that(res.body.equals(m.data), 'MUST', `${describe(res)}: body differs from the pushed bytes (${res.body.length} vs ${m.size} bytes)`);
  else e.header(res, 'content-length', String(m.size), 'SHOULD');
  e.header(res, 'content-type', m.mediaType, 'SHOULD');
  e.header(res, 'docker-content-digest', m.digest, 'SHOULD');
}

/** A 200 blob answer: bytes (GET) or size (HEAD), digest and ETag headers. */
export function expectBlob(e: Expect, res: Resp, b: Blob): void {
  e.status(res, 200);
  if (res.method === 'GET') e.that(res.body.equals(b.data), 'MUST', `${describe(res)}: body differs from the pushed blob (${res.body.length} vs ${b.size} bytes)`);
  else e.that(res.body.length === 0, 'MUST', `${describe(res)}: answered with a body`);
  e.header(res, 'content-length', String(b.size), res.method === 'GET' ? 'MUST' : 'SHOULD');
  e.header(res, 'docker-content-digest', b.digest, 'SHOULD');
  e.header(res, 'etag', undefined, 'MAY');
}

export async function pull(s: Suite): Promise<void> {
  const repo = s.repo('pull');
  const layer = randomBlob(4096);
  const config = imageConfig([layer]);
  const m = ociManifest(descriptor(MT.ociConfig, config), [descriptor(MT.ociLayer, layer)]);
  // Content another repository holds, which this one must not serve.
  const other = s.repo('pull-other');
  const elsewhere = randomBlob(512);
  const otherConfig = imageConfig([elsewhere]);
  const otherManifest = ociManifest(descriptor(MT.ociConfig, otherConfig), [descriptor(MT.ociLayer, elsewhere)]);
  const ready = await s.check(C, 'set-up: push a config, a layer and a manifest tagged "latest"', async () => {
    await s.pushBlob(repo, layer);
    await s.pushBlob(repo, config);
    await s.pushManifest(repo, 'latest', m);
    await s.pushBlob(other, elsewhere);
    await s.pushBlob(other, otherConfig);
    await s.pushManifest(other, 'latest', otherManifest);
  });
  const need = () => {
    if (!ready) throw new SetupError('content could not be pushed');
  };
  const blobs = `/v2/${repo}/blobs`;

  await s.check(C, 'GET blob: 200, bytes, Content-Length, Docker-Content-Digest, ETag', async (e) => {
    need();
    expectBlob(e, await s.req('GET', `${blobs}/${layer.digest}`, { follow: true }), layer);
  });

  await s.check(C, 'HEAD blob: 200, Content-Length, Docker-Content-Digest, no body', async (e) => {
    need();
    expectBlob(e, await s.req('HEAD', `${blobs}/${layer.digest}`, { follow: true }), layer);
  });

  await s.check(C, 'GET blob with Range: 206 and Content-Range', async (e) => {
    need();
    const res = await s.req('GET', `${blobs}/${layer.digest}`, { headers: { range: 'bytes=100-1123' }, follow: true });
    if (!e.status(res, 206, 'SHOULD')) return;
    e.header(res, 'content-range', `bytes 100-1123/${layer.size}`, 'MUST');
    e.that(res.body.equals(layer.data.subarray(100, 1124)), 'MUST', `${describe(res)} Range bytes=100-1123: body is not that slice of the blob`);
  });

  await s.check(C, 'GET blob with a suffix Range (bytes=-N): 206', async (e) => {
    need();
    const res = await s.req('GET', `${blobs}/${layer.digest}`, { headers: { range: 'bytes=-10' }, follow: true });
    if (!e.status(res, 206, 'MAY')) return;
    e.header(res, 'content-range', `bytes ${layer.size - 10}-${layer.size - 1}/${layer.size}`, 'MUST');
    e.that(res.body.equals(layer.data.subarray(layer.size - 10)), 'MUST', `${describe(res)} Range bytes=-10: body is not the last 10 bytes`);
  });

  await s.check(C, 'GET blob with an unsatisfiable Range: 416', async (e) => {
    need();
    const res = await s.req('GET', `${blobs}/${layer.digest}`, { headers: { range: `bytes=${layer.size + 100}-` }, follow: true });
    if (!e.status(res, 416, 'SHOULD')) return;
    e.header(res, 'content-range', `bytes */${layer.size}`, 'MAY');
  });

  await s.check(C, 'GET unknown blob: 404 BLOB_UNKNOWN', async (e) => {
    e.error(await s.req('GET', `${blobs}/${unknownDigest()}`), 404, 'BLOB_UNKNOWN');
  });

  await s.check(C, 'HEAD unknown blob: 404', async (e) => {
    e.status(await s.req('HEAD', `${blobs}/${unknownDigest()}`), 404);
  });

  await s.check(C, 'GET blob that only another repository holds: 404 BLOB_UNKNOWN', async (e) => {
    need();
    e.error(await s.req('GET', `${blobs}/${elsewhere.digest}`), 404, 'BLOB_UNKNOWN');
  });

  await s.check(C, 'GET manifest by a digest that only another repository holds: 404 MANIFEST_UNKNOWN', async (e) => {
    need();
    e.error(await s.getManifest(repo, otherManifest.digest), 404, 'MANIFEST_UNKNOWN');
  });

  await s.check(C, 'GET blob with a malformed digest: 400 DIGEST_INVALID', async (e) => {
    e.error(await s.req('GET', `${blobs}/sha256:not-hex`), 400, 'DIGEST_INVALID', 'SHOULD');
  });

  for (const [what, ref] of [
    ['tag', 'latest'],
    ['digest', m.digest],
  ]) {
    await s.check(C, `GET manifest by ${what}: stored bytes, Content-Type, Docker-Content-Digest`, async (e) => {
      need();
      expectManifest(e, await s.getManifest(repo, ref), m);
    });
    await s.check(C, `HEAD manifest by ${what}: Content-Length, Content-Type, Docker-Content-Digest`, async (e) => {
      need();
      expectManifest(e, await s.getManifest(repo, ref, 'HEAD'), m);
    });
  }

  await s.check(C, 'GET manifest with several Accept headers and q-values', async (e) => {
    need();
    const res = await s.req('GET', `/v2/${repo}/manifests/latest`, {
      headers: { accept: [`${MT.dockerManifest};q=0.9`, `${MT.ociIndex};q=0.5, ${MT.ociManifest};q=0.8`] },
    });
    expectManifest(e, res, m);
  });

  await s.check(C, 'GET manifest without Accept: stored manifest', async (e) => {
    need();
    const res = await s.req('GET', `/v2/${repo}/manifests/latest`);
    if (!e.status(res, 200, 'MAY')) return;
    expectManifest(e, res, m);
  });

  await s.check(C, 'GET unknown tag: 404 MANIFEST_UNKNOWN', async (e) => {
    e.error(await s.getManifest(repo, 'no-such-tag'), 404, 'MANIFEST_UNKNOWN');
  });

  await s.check(C, 'GET unknown manifest digest: 404 MANIFEST_UNKNOWN', async (e) => {
    e.error(await s.getManifest(repo, unknownDigest()), 404, 'MANIFEST_UNKNOWN');
  });

  await s.check(C, 'HEAD unknown manifest: 404', async (e) => {
    const res = await s.getManifest(repo, 'no-such-tag', 'HEAD');
    e.status(res, 404);
    e.that(res.body.length === 0, 'MUST', `${describe(res)}: answered with a body`);
  });

  // No manifest can have this reference; only a PUT should call it invalid.
  for (const method of ['GET', 'HEAD']) {
    await s.check(C, `${method} manifest by a reference that is neither a tag nor a digest: 404 MANIFEST_UNKNOWN`, async (e) => {
      e.error(await s.getManifest(repo, INVALID_REFERENCE, method), 404, 'MANIFEST_UNKNOWN');
    });
  }

  await s.check(C, 'GET manifest of an unknown repository: 404 NAME_UNKNOWN or MANIFEST_UNKNOWN', async (e) => {
    e.error(await s.getManifest(s.repo('never-pushed'), 'latest'), 404, ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']);
  });
}
