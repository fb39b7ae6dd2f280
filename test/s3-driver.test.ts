// S3-specific driver behaviour on a real S3 store (Swift s3api): part sizes,
// resuming after a crash, aborting multipart uploads, retries, timeouts,
// unreachable store, presigned URLs. Faults come from a small HTTP proxy in
// front of the store that can answer 503 SlowDown or never answer.
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import t from 'tap';
import { ListPartsCommand } from '@aws-sdk/client-s3';
import { StorageUnavailableError } from '../storage/driver';
import { S3Driver, type S3DriverOptions } from '../storage/drivers/s3';
import { readAll } from './helpers/oci-client';
import { waitFor } from './helpers/ops-client';
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

/** Wait until a writer's parts in flight have reached the store (write() does not wait for the upload it starts). */
async function partsStored(d: S3Driver, path: string, bytes: number) {
  for (let i = 0; i < 100; i++) {
    if ((await d.openWrite(d.key(path))).partBytes >= bytes) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${path}: parts never reached ${bytes} bytes`);
}

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
  await partsStored(d, '/crash/data', 5 * MiB);
  t.equal((await d.stat('/crash/data')).size, 5 * MiB, 'stat agrees');
  const w3 = await driver().writer('/crash/data', true);
  t.equal(w3.size, 5 * MiB, 'resumes after the part; the stale tail is not counted twice');
  await w3.write(Buffer.from('end'));
  await w3.commit();
  t.equal(sha(await d.getContent('/crash/data')), sha(Buffer.concat([a, b.subarray(0, 2 * MiB), Buffer.from('end')])), 'content is part 1 + the new bytes');
});

t.test('a truncating writer that died before its first close: the old tail names an aborted upload', async (t) => {
  const d = driver();
  const old = randomBytes(6 * MiB);
  const w1 = await d.writer('/restart/data', false);
  await w1.write(old);
  await w1.close(); // one part and a 1 MiB tail naming its upload
  const fresh = randomBytes(7 * MiB);
  const w2 = await driver().writer('/restart/data', false); // aborts that upload
  await w2.write(fresh); // uploads a 5 MiB part of a new upload, then dies
  await partsStored(d, '/restart/data', 5 * MiB);
  const w3 = await driver().writer('/restart/data', true);
  t.equal(w3.size, 5 * MiB, "the new upload's part counts; the stale tail does not");
  await w3.commit();
  t.equal(sha(await d.getContent('/restart/data')), sha(fresh.subarray(0, 5 * MiB)), "content is the new writer's part");
});

t.test('close() sends a remainder of at least half a part as a short part, not as a tail', async (t) => {
  const d = driver({ chunksize: 10 * MiB });
  const chunks = [8 * MiB, 8 * MiB, 3 * MiB].map((n) => randomBytes(n));
  const shape = async () => {
    const s = await d.openWrite(d.key('/short/data'));
    return { parts: s.parts.length, tail: s.tail[0]?.length ?? 0 };
  };
  for (const [i, c] of chunks.entries()) {
    const w = await d.writer('/short/data', i > 0);
    await w.write(c);
    await w.close();
  }
  t.same(await shape(), { parts: 2, tail: 3 * MiB }, 'two 8 MiB parts; 3 MiB (under the 5 MiB minimum) waits in the tail');
  const w = await driver({ chunksize: 10 * MiB }).writer('/short/data', true);
  t.equal(w.size, 19 * MiB, 'another instance resumes at the end');
  await w.commit();
  t.equal(sha(await d.getContent('/short/data')), sha(Buffer.concat(chunks)), 'content intact');
});

t.test('atomic writers: invisible until commit, racing writers of one key, cancel aborts only its own', async (t) => {
  const d = driver();
  const data = randomBytes(12 * MiB + 5);
  const uploads = async () => (await d.uploadsOf(d.key('/atomic'), false)).length;
  const [w1, w2] = [await d.atomicWriter('/atomic/blob'), await driver().atomicWriter('/atomic/blob')];
  for (const w of [w1, w2]) for (let o = 0; o < data.length; o += 4 * MiB) await w.write(data.subarray(o, o + 4 * MiB));
  await t.rejects(d.stat('/atomic/blob'), { name: 'PathNotFoundError' }, 'nothing visible before commit');
  t.equal(await uploads(), 2, 'each writer has its own multipart upload');
  await t.rejects(w1.close(), /commit\(\) or cancel\(\)/, 'close() is not for atomic writers');
  await w2.commit();
  t.equal(sha(await d.getContent('/atomic/blob')), sha(data), 'the second writer committed first');
  await w1.commit();
  t.equal(sha(await d.getContent('/atomic/blob')), sha(data), 'the first commits the same bytes over it');
  t.equal(await uploads(), 0, 'no upload left');

  const [w3, w4] = [await d.atomicWriter('/atomic/other'), await d.atomicWriter('/atomic/other')];
  for (const w of [w3, w4]) await w.write(data);
  await w3.cancel();
  t.equal(await uploads(), 1, "cancel aborted only the writer's own upload");
  await w4.commit();
  t.equal((await d.stat('/atomic/other')).size, data.length, 'the other writer still commits');

  const small = await d.atomicWriter('/atomic/small');
  await small.write(Buffer.from('tiny'));
  await small.commit();
  t.equal((await d.getContent('/atomic/small')).toString(), 'tiny', 'under one part: a single PutObject');

  const dead = await d.atomicWriter('/atomic/dead');
  await dead.write(data);
  t.equal(await d.abortStaleWrites('/atomic', new Date(Date.now() - 60_000)), 0, 'a young upload is left alone');
  t.equal(await d.abortStaleWrites('/atomic', new Date(Date.now() + 60_000)), 1, 'an old one is aborted');
  t.equal(await uploads(), 0, 'nothing left');
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

t.test('long reads: parts fetched ahead, in order, from one version of the object, within the read-ahead budget', async (t) => {
  const d = driver();
  const readAheadFree = () => (d as unknown as { readAheadFree: number }).readAheadFree;
  const budget = readAheadFree();
  const data = randomBytes(40 * MiB);
  await d.putContent('/parts/blob', data);

  // More reads at once than the budget has parts for: the rest read what is left in one GET.
  const reads = await Promise.all(Array.from({ length: 12 }, async (_, i) => sha(await readAll(await d.reader('/parts/blob', i, data.length - i)))));
  reads.forEach((h, i) => t.equal(h, sha(data.subarray(i, data.length - i)), `parallel read ${i}`));
  t.equal(readAheadFree(), budget, 'every part fetched ahead gave its budget back');

  // Readers dropped part-way give it back too.
  for (let i = 0; i < 4; i++) {
    const r = await d.reader('/parts/blob', 0, data.length);
    await new Promise((resolve) => r.once('data', resolve));
    r.destroy();
  }
  (await d.reader('/parts/blob', 0, data.length)).destroy();
  await waitFor('the budget back', () => readAheadFree() === budget, 1000, 20);
  t.equal(readAheadFree(), budget, 'dropped readers gave their budget back, one dropped before its first read too');

  // An object replaced during a read fails the read instead of mixing versions.
  const r = await d.reader('/parts/blob', 0, data.length);
  const first = await new Promise<Buffer>((resolve) => r.once('data', resolve));
  r.pause();
  await d.putContent('/parts/blob', randomBytes(data.length));
  const rest = readAll(r);
  await t.rejects(rest, 'the read fails once it reaches a part of the new version');
  t.same(first, data.subarray(0, first.length), 'what it served before was the old version');
});

t.test('long reads: without read-ahead budget a read is one GET, not parts with a stall between', async (t) => {
  const proxy = await faultProxy(s3.endpoint);
  t.teardown(proxy.close);
  const d = driver({ regionendpoint: proxy.url });
  const data = randomBytes(40 * MiB);
  await d.putContent('/parts/one-get', data);
  const gets = () => proxy.state.payloadHashes.filter((r) => r.method === 'GET').length;

  // Two paused readers, each with a part of read-ahead reserved, spend the budget.
  const holders = [];
  for (let i = 0; i < 2; i++) {
    const r = await d.reader('/parts/one-get', 0, data.length);
    await new Promise((resolve) => r.once('data', resolve));
    r.pause();
    holders.push(r);
  }
  await waitFor('the parts fetched ahead', () => gets() >= 4, 1000, 20);
  t.equal(gets(), 4, 'each holder: its first part and one part ahead');

  const before = gets();
  t.equal(sha(await readAll(await d.reader('/parts/one-get', 1, data.length))), sha(data.subarray(1)), 'the read is whole');
  t.equal(gets() - before, 1, 'one GET for the whole range');
  for (const r of holders) r.destroy();
});

/** A proxy in front of the store (HTTPS with `tls`) that can fail or hang, and records each request's payload hash header. */
async function faultProxy(target: string, tls?: { key: string; cert: string }) {
  const state = { fail: 0, hang: false, seen: 0, payloadHashes: [] as { method: string; url: string; hash: string }[] };
  const sockets = new Set<net.Socket>();
  const upstream = new URL(target);
  const handler: http.RequestListener = (req, res) => {
    state.seen++;
    state.payloadHashes.push({ method: req.method!, url: req.url!, hash: String(req.headers['x-amz-content-sha256']) });
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
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  server.on(tls ? 'secureConnection' : 'connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
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

t.test('over https, data uploads go unsigned (TLS protects them); plain http and other calls sign the payload', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-s3-tls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1'], { cwd: dir, stdio: 'ignore' });
  const tls = { key: fs.readFileSync(path.join(dir, 'key.pem'), 'utf8'), cert: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8') };
  const hex = /^[0-9a-f]{64}$/;
  for (const secure of [true, false]) {
    const proxy = await faultProxy(s3.endpoint, secure ? tls : undefined);
    t.teardown(proxy.close);
    const d = driver({ regionendpoint: proxy.url, skipverify: true });
    const data = randomBytes(6 * MiB);
    const w = await d.writer(`/signing-${secure}/data`, false);
    await w.write(data);
    await w.commit();
    await d.putContent(`/signing-${secure}/small`, Buffer.from('small'));
    t.equal(sha(await d.getContent(`/signing-${secure}/data`)), sha(data), `${proxy.url.split(':')[0]}: content round-trips`);
    const puts = proxy.state.payloadHashes.filter((r) => r.method === 'PUT');
    const others = proxy.state.payloadHashes.filter((r) => r.method !== 'PUT');
    t.ok(puts.length >= 3, `${puts.length} part and object PUTs`);
    if (secure) t.ok(puts.every((r) => r.hash === 'UNSIGNED-PAYLOAD'), 'https: every data PUT is UNSIGNED-PAYLOAD');
    else t.ok(puts.every((r) => hex.test(r.hash)), 'http: every data PUT carries its SHA-256');
    t.ok(others.length && others.every((r) => hex.test(r.hash)), 'other calls are signed with their payload hash');
  }
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
