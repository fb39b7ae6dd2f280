// When the disk fails to flush an upload's bytes (datasync/fsync: EIO), the
// upload is dropped and the client told to start over: nothing of it is ever
// served and a new upload of the same blob succeeds. The failure is injected
// into a real berth process by test/fixtures/disk-faults.ts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startBerth, tempDir } from './helpers/berth';
import { OciClient, bufferSource } from './helpers/oci-client';

const FIXTURE = path.resolve(__dirname, 'fixtures/disk-faults.js');
const MiB = 1 << 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a flush the disk fails drops the upload: 503, nothing served, a new upload succeeds', async (t) => {
  const toggle = path.join(tempDir(), 'fail-flush');
  const b = await startBerth({ nodeArgs: ['--require', FIXTURE], env: { BERTH_TEST_FAIL_FLUSH: toggle } });
  t.teardown(() => b.stop());
  const c = new OciClient(b.url);
  t.teardown(() => c.close());
  const data = crypto.randomBytes(6 * MiB);
  const blob = bufferSource(data);
  const uploads = path.join(b.root, 'docker/registry/v2/repositories/lost/flush/_uploads');
  const octets = (n: number) => ({ 'Content-Type': 'application/octet-stream', 'Content-Length': n });
  const code = (body: Buffer) => JSON.parse(body.toString()).errors[0].code;
  // Flushes of files whose path contains `match` fail; undefined: none fail.
  const failFlushes = (match?: string) => (match ? fs.writeFileSync(toggle, match) : fs.rmSync(toggle, { force: true }));
  t.teardown(() => failFlushes());

  await t.test('a failed flush when an upload starts: 503 and nothing left', async (t) => {
    failFlushes('/startedat');
    const r = await c.request('POST', '/v2/lost/flush/blobs/uploads/', { 'Content-Length': 0 });
    failFlushes();
    t.equal(r.status, 503);
    t.equal(code(r.body), 'UNAVAILABLE');
    t.same(fs.existsSync(uploads) ? fs.readdirSync(uploads) : [], [], 'nothing of the session is left, no temporary file either');
  });

  await t.test('a background flush that fails after its PATCH was answered', async (t) => {
    failFlushes('/data');
    const loc = await c.startUpload('lost/flush');
    // 5 MiB crosses the 4 MiB at which a background datasync starts; it fails 300 ms later.
    let r = await c.request('PATCH', loc, { ...octets(5 * MiB), 'Content-Range': `0-${5 * MiB - 1}` }, data.subarray(0, 5 * MiB));
    t.equal(r.status, 202, 'the PATCH is answered without waiting for its flush');
    await sleep(800);
    failFlushes();
    const next = new URL(String(r.headers.location), b.url).toString();
    r = await c.request('PATCH', next, { ...octets(MiB), 'Content-Range': `${5 * MiB}-${6 * MiB - 1}` }, data.subarray(5 * MiB));
    t.equal(r.status, 503, 'the next request on the upload fails');
    t.equal(code(r.body), 'UNAVAILABLE');
    t.equal(await c.uploadOffset(next), null, 'the upload is gone: the client starts over');
    t.same(fs.readdirSync(uploads), [], 'nothing of it is left on disk');
  });

  await t.test('a flush that fails while the final PUT waits for it', async (t) => {
    failFlushes('/data');
    const loc = await c.startUpload('lost/flush');
    const r = await c.request('PUT', `${loc}${loc.includes('?') ? '&' : '?'}digest=${blob.digest}`, octets(blob.size), data);
    failFlushes();
    t.equal(r.status, 503, 'the PUT fails');
    t.equal(code(r.body), 'UNAVAILABLE');
    t.equal((await c.request('HEAD', `/v2/lost/flush/blobs/${blob.digest}`)).status, 404, 'the blob is not visible');
    t.equal(await c.uploadOffset(loc), null, 'the upload is gone');
    t.same(fs.readdirSync(uploads), [], 'nothing of it is left on disk');
    t.match(b.output(), /storage lost written data/, 'the failure is logged for the operator');
  });

  await t.test('with the disk healthy again the same blob uploads and reads back whole', async (t) => {
    await c.pushBlob('lost/flush', blob);
    const got = await c.request('GET', `/v2/lost/flush/blobs/${blob.digest}`);
    t.equal(got.status, 200);
    t.ok(got.body.equals(data), 'the bytes served are the bytes pushed');
  });
});
