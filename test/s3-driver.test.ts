// S3-specific driver behaviour on a real S3 store (Swift s3api): part sizes,
// resuming after a crash, aborting multipart uploads, retries, timeouts,
// unreachable store, presigned URLs. Faults come from a small HTTP proxy in
// front of the store that can answer 503 SlowDown or never answer.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import t from 'tap';
import { ListPartsCommand } from '@aws-sdk/client-s3';
import { StorageUnavailableError } from '../storage/driver';
import { S3Driver, type S3DriverOptions } from '../storage/drivers/s3';
import { freePort } from './helpers/process';
import { startS3, type S3Server } from './helpers/s3';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let s3: S3Server;
const drivers: S3Driver[] = [];
const driver = (extra: Partial<S3DriverOptions> = {}) => {
  const d = new S3Driver(s3.options({ rootdirectory: '/s3-driver-test', chunksize: 5 * MiB, ...extra }));
  drivers.push(d);
  return d;
};

t.before(async () => {
  s3 = await startS3();
});
t.teardown(async () => {
  for (const d of drivers) await d.close();
  await s3?.stop();
});

t.test('part sizes grow so an upload fits the part limit', async (t) => {
  // 20 parts allowed: the size doubles every 2 parts (5, 5, 10, 10, 20, ...).
  const d = driver({ maxuploadparts: 20 });
  const data = randomBytes(31 * MiB);
  const w = await d.writer('/grow/data', false);
  for (let o = 0; o < data.length; o += 3 * MiB) await w.write(data.subarray(o, o + 3 * MiB));
  await w.close();
  const [upload] = await d.uploadsOf(d.key('/grow/data'), true);
  const parts = await d.client.send(new ListPartsCommand({ Bucket: s3.bucket, Key: d.key('/grow/data'), UploadId: upload.uploadId }));
  t.same(parts.Parts!.map((p) => p.Size! / MiB), [5, 5, 10, 10], 'part sizes');
  const again = await d.writer('/grow/data', true);
  t.equal(again.size, data.length, 'resumed at the end');
  await again.commit();
  t.equal(sha(await d.getContent('/grow/data')), sha(data), 'content intact');

  const tight = driver({ maxuploadparts: 3 });
  const w2 = await tight.writer('/grow/too-big', false);
  for (let i = 0; i < 36; i++) await w2.write(data.subarray(0, MiB));
  await t.rejects(w2.commit(), /exceeds 3 parts/, 'refuses a fourth part instead of failing at S3');
  await w2.cancel();
});

t.test('a writer that died between uploading a part and rewriting its tail', async (t) => {
  const d = driver();
  const a = randomBytes(3 * MiB);
  const b = randomBytes(4 * MiB);
  const w1 = await d.writer('/crash/data', false);
  await w1.write(a);
  await w1.close();
  // The next writer fills part 1 (a + 1st 2 MiB of b) and dies before close().
  const w2 = await driver().writer('/crash/data', true);
  await w2.write(b);
  t.equal((await d.stat('/crash/data')).size, 5 * MiB, 'stat agrees');
  const w3 = await driver().writer('/crash/data', true);
  t.equal(w3.size, 5 * MiB, 'resumes after the part; the stale tail is not counted twice');
  await w3.write(Buffer.from('end'));
  await w3.commit();
  t.equal(sha(await d.getContent('/crash/data')), sha(Buffer.concat([a, b.subarray(0, 2 * MiB), Buffer.from('end')])), 'content is part 1 + the new bytes');
});

t.test('cancel and tree delete abort multipart uploads', async (t) => {
  const d = driver();
  for (const p of ['/abort/one/data', '/abort/two/data']) {
    const w = await d.writer(p, false);
    await w.write(randomBytes(6 * MiB));
    await w.close();
  }
  t.equal((await d.uploadsOf(d.key('/abort'), false)).length, 2, 'two open uploads');
  await (await d.writer('/abort/one/data', true)).cancel();
  t.equal((await d.uploadsOf(d.key('/abort'), false)).length, 1, 'cancel aborted one');
  await d.delete('/abort');
  t.equal((await d.uploadsOf(d.key('/abort'), false)).length, 0, 'deleting the tree aborted the other');
});

t.test('listMarkedDirs: directories with a marked child, one request per 1,000', async (t) => {
  const d = driver();
  for (const f of ['r/a/_x/1', 'r/a/_y/2', 'r/a/b/_x/3', 'r/a-b/_z/4', 'r/c/d/e/_x/5', 'r/plain/file', 'r/f/_x/deep/_y/6']) {
    await d.putContent(`/marked/${f}`, Buffer.from(f));
  }
  t.same((await d.listMarkedDirs('/marked/r', '_')).sort(), ['a', 'a-b', 'a/b', 'c/d/e', 'f'], 'marked directories at any depth, none below a marked child');
});

t.test('presigned redirect URLs', async (t) => {
  const d = driver();
  const data = randomBytes(1000);
  await d.putContent('/presign/blob', data);
  const get = await d.redirectURL('/presign/blob', 'GET');
  const res = await fetch(get!);
  t.equal(res.status, 200);
  t.same(Buffer.from(await res.arrayBuffer()), data, 'GET URL serves the bytes');
  const head = await fetch((await d.redirectURL('/presign/blob', 'HEAD'))!, { method: 'HEAD' });
  t.equal(head.headers.get('content-length'), '1000', 'HEAD URL');
  const ranged = await fetch(get!, { headers: { Range: 'bytes=10-19' } });
  t.same(Buffer.from(await ranged.arrayBuffer()), data.subarray(10, 20), 'Range works through the URL');
});

/** A proxy in front of the store: passes requests on, or fails or stalls them on demand. */
async function faultProxy(target: string) {
  const state = { fail: 0, hang: false, seen: 0 };
  const sockets = new Set<net.Socket>();
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    state.seen++;
    if (state.hang) return; // accept and never answer
    if (state.fail > 0) {
      state.fail--;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
      return;
    }
    // Headers unchanged (Host included), so the SigV4 signature still verifies.
    const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode!, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

t.test('throttling is retried with backoff; persistent failure is StorageUnavailableError', async (t) => {
  const proxy = await faultProxy(s3.endpoint);
  t.teardown(proxy.close);
  const d = driver({ regionendpoint: proxy.url, maxattempts: 4 });
  proxy.state.fail = 2;
  proxy.state.seen = 0;
  await d.putContent('/retry/x', Buffer.from('ok'));
  t.equal(proxy.state.seen, 3, 'two SlowDown answers, then success');
  t.equal((await d.getContent('/retry/x')).toString(), 'ok');
  proxy.state.fail = 100;
  proxy.state.seen = 0;
  await t.rejects(d.stat('/retry/x'), StorageUnavailableError as any, 'gives up after maxattempts');
  t.equal(proxy.state.seen, 4, 'four attempts');
  proxy.state.fail = 0;
});

t.test('a store that never answers times out as StorageUnavailableError', async (t) => {
  const proxy = await faultProxy(s3.endpoint);
  t.teardown(proxy.close);
  const d = driver({ regionendpoint: proxy.url, operationtimeout: 1500 });
  proxy.state.hang = true;
  const t0 = Date.now();
  await t.rejects(d.healthCheck(), StorageUnavailableError as any, 'health check');
  await t.rejects(d.getContent('/anything'), StorageUnavailableError as any, 'read');
  t.ok(Date.now() - t0 < 6000, `bounded by operationtimeout (${Date.now() - t0} ms for two calls)`);
});

t.test('an unreachable store is StorageUnavailableError, quickly', async (t) => {
  const port = await freePort(); // nothing listens there
  const d = driver({ regionendpoint: `http://127.0.0.1:${port}`, maxattempts: 2 });
  const t0 = Date.now();
  await t.rejects(d.healthCheck(), StorageUnavailableError as any);
  await t.rejects(d.writer('/x/data', true), StorageUnavailableError as any, 'resuming a writer');
  t.ok(Date.now() - t0 < 5000, `${Date.now() - t0} ms`);
});
