// Requests and manifests berth must refuse, against a real process over real
// HTTP (raw sockets where no HTTP client would send the request): each gets a
// JSON error body, never a 2xx, and leaves nothing in the store.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Client } from '../conformance/client';
import { startBerth, type Berth } from './helpers/berth';
import { GeneratedBlob, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, OciClient, bufferSource, imageManifest, sha256, type Reply } from './helpers/oci-client';

let berth: Berth;
let oci: OciClient;
t.before(async () => {
  berth = await startBerth();
  oci = new OciClient(berth.url);
});
t.teardown(async () => {
  oci.close();
  await berth.stop();
});

function errorCode(r: { headers: Record<string, unknown>; body: Buffer }): string | undefined {
  if (!String(r.headers['content-type']).startsWith('application/json')) return undefined;
  return JSON.parse(r.body.toString()).errors?.[0]?.code;
}

t.test('malformed request lines and Host headers: 400 with a JSON error', async (t) => {
  const raw = new Client({ url: berth.url });
  const host = `Host: ${berth.host}\r\n`;
  const cases: [string, string][] = [
    ['a request line without a version (HTTP/0.9)', 'GET /v2/\r\n\r\n'],
    ['HTTP/0.9', `GET /v2/ HTTP/0.9\r\n${host}\r\n`],
    ['HTTP/2.0 in an HTTP/1 request line', `GET /v2/ HTTP/2.0\r\n${host}\r\n`],
    ['HTTP/1.2', `GET /v2/ HTTP/1.2\r\n${host}\r\n`],
    ['two Host headers', `GET /v2/ HTTP/1.1\r\n${host}Host: elsewhere.example\r\n\r\n`],
    ['HTTP/1.1 without Host', 'GET /v2/ HTTP/1.1\r\n\r\n'],
  ];
  for (const [what, head] of cases) {
    const res = await raw.rawHead(head);
    t.equal(res?.status, 400, `${what}: 400`);
    if (res) t.equal(errorCode(res), 'UNSUPPORTED', `${what}: the spec's JSON error body`);
  }
  const ok = await raw.rawHead('GET /v2/ HTTP/1.0\r\n\r\n');
  t.equal(ok?.status, 200, 'HTTP/1.0 without Host is still served');
});

t.test('paths outside /v2 that berth does not serve: a JSON 404', async (t) => {
  for (const [method, target] of [
    ['GET', '/v1/_ping'],
    ['POST', '/'],
    ['DELETE', '/'],
    ['PUT', '/healthz'],
    ['GET', '/no/such/page'],
  ]) {
    const r: Reply = await oci.request(method, target);
    t.equal(r.status, 404, `${method} ${target}: 404`);
    t.equal(errorCode(r), 'UNSUPPORTED', `${method} ${target}: JSON error body, not text/plain`);
  }
  t.equal((await oci.request('GET', '/healthz')).status, 200, 'the health endpoint still answers');
});

t.test('a manifest over 4 MiB: the client reads the 413, not a reset', async (t) => {
  const size = 5 * 1024 * 1024;
  for (const [what, headers] of [
    ['with Content-Length and Connection: close', { 'Content-Length': size, Connection: 'close' }],
    ['with Content-Length, kept alive', { 'Content-Length': size }],
    ['chunked and Connection: close', { Connection: 'close' }],
    ['chunked, kept alive', {}],
  ] as const) {
    // Streamed, so the answer can arrive while the client is still sending.
    const r = await oci.request('PUT', '/v2/big/manifests/latest', { 'Content-Type': OCI_MANIFEST, ...headers }, new GeneratedBlob(what, size).stream());
    t.equal(r.status, 413, `${what}: 413`);
    t.equal(errorCode(r), 'SIZE_INVALID', `${what}: SIZE_INVALID`);
  }
  t.equal((await oci.request('GET', '/v2/')).status, 200, 'the registry still answers on kept-alive connections');
  t.equal((await oci.getManifest('big', 'latest')).status, 404, 'nothing was stored');
});

t.test('refused manifests leave no revision, tag or blob behind', async (t) => {
  const repo = 'refused/app';
  const layer = bufferSource('a layer of some bytes');
  const config = bufferSource('{"architecture":"amd64","os":"linux"}');
  for (const b of [layer, config]) await oci.pushBlob(repo, b);
  const cfg = { mediaType: OCI_CONFIG, digest: config.digest, size: config.size };
  const lay = { mediaType: OCI_LAYER, digest: layer.digest, size: layer.size };
  const text = (m: Buffer) => m.toString();
  const cases: [string, Buffer][] = [
    ['a layer of size 0', imageManifest(cfg, [{ ...lay, size: 0 }])],
    ['a layer of size 1', imageManifest(cfg, [{ ...lay, size: 1 }])],
    ['a config of size 1', imageManifest({ ...cfg, size: 1 }, [lay])],
    ['a layer one byte larger than the blob', imageManifest(cfg, [{ ...lay, size: layer.size + 1 }])],
    ['invalid UTF-8', Buffer.concat([Buffer.from(text(imageManifest(cfg, [lay], { annotations: { a: '' } })).slice(0, -3)), Buffer.from([0xe9]), Buffer.from('"}}')])],
    ['an overlong UTF-8 "/"', Buffer.concat([Buffer.from(text(imageManifest(cfg, [lay], { annotations: { a: '' } })).slice(0, -3)), Buffer.from([0xc0, 0xaf]), Buffer.from('"}}')])],
    ['a duplicate key', Buffer.from(text(imageManifest(cfg, [lay])).replace('{', '{"schemaVersion":2,'))],
    ['a non-string annotation value', imageManifest(cfg, [lay], { annotations: { n: 1 } })],
    ['nesting 100000 levels deep', Buffer.from(text(imageManifest(cfg, [lay])).replace('{', `{"x":${'['.repeat(100_000)}${']'.repeat(100_000)},`))],
  ];
  const v2 = path.join(berth.root, 'docker/registry/v2');
  for (const [what, bytes] of cases) {
    const r = await oci.request('PUT', `/v2/${repo}/manifests/refused`, { 'Content-Type': OCI_MANIFEST }, bytes);
    t.equal(r.status, 400, `${what}: 400`);
    t.equal(errorCode(r), 'MANIFEST_INVALID', `${what}: MANIFEST_INVALID`);
    const hex = sha256(bytes).slice('sha256:'.length);
    t.notOk(fs.existsSync(path.join(v2, 'repositories', repo, '_manifests/revisions/sha256', hex)), `${what}: no revision link`);
    t.notOk(fs.existsSync(path.join(v2, 'blobs/sha256', hex.slice(0, 2), hex)), `${what}: no blob`);
  }
  t.notOk(fs.existsSync(path.join(v2, 'repositories', repo, '_manifests/tags/refused')), 'no tag');
  const good = imageManifest(cfg, [lay]);
  t.equal((await oci.putManifest(repo, 'good', good, OCI_MANIFEST)).digest, sha256(good), 'the same manifest with true sizes is stored');
});
