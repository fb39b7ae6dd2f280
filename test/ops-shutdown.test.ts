// Graceful shutdown: on SIGTERM berth stops accepting, reports not ready,
// lets in-flight requests finish within http.draintimeout and exits 0.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import t from 'tap';
import { startBerth } from './helpers/berth';
import { sha256 } from './helpers/ops-client';
import { freePort } from './helpers/process';
import { startUpload } from './helpers/registry-client';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
}

/** A request whose body the test writes by hand; resolves with the response. */
function openRequest(url: string, method: string, headers: http.OutgoingHttpHeaders, agent?: http.Agent): { req: http.ClientRequest; reply: Promise<Reply> } {
  const req = http.request(url, { method, headers, agent });
  const reply = new Promise<Reply>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.on('error', reject);
  });
  return { req, reply };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('an upload streaming when SIGTERM arrives completes and is readable after a restart', async (t) => {
  const debugPort = await freePort();
  const debug = `http://127.0.0.1:${debugPort}`;
  const b = await startBerth({ env: { REGISTRY_HTTP_DEBUG_ADDR: `127.0.0.1:${debugPort}`, REGISTRY_HTTP_DRAINTIMEOUT: '30s', REGISTRY_LOG_LEVEL: 'info' } });
  t.teardown(async () => {
    await b.kill();
    fs.rmSync(b.root, { recursive: true, force: true });
  });

  // An idle keep-alive connection must not hold the drain up.
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  t.equal((await openRequestDone(`${b.url}/v2/`, agent)).status, 200);

  const data = crypto.randomBytes(4 << 20);
  const digest = sha256(data);
  const location = b.url + (await startUpload(b.url, 'drain/test'));
  const { req, reply } = openRequest(`${location}?digest=${digest}`, 'PUT', { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length });
  const CHUNK = 64 << 10;
  let signalled = false;
  for (let off = 0; off < data.length; off += CHUNK) {
    req.write(data.subarray(off, off + CHUNK));
    await sleep(15);
    if (!signalled && off >= data.length / 4) {
      signalled = true;
      b.proc.kill('SIGTERM');
      await sleep(200);
      const r = await fetch(`${debug}/readyz`);
      t.equal(r.status, 503, 'not ready while draining');
      t.same(await r.json(), { status: 'not ready', reason: 'draining' });
      await t.rejects(fetch(`${b.url}/v2/`), 'new connections are refused');
      t.equal(b.proc.exitCode, null, 'still running while the upload streams');
    }
  }
  req.end();
  const res = await reply;
  t.equal(res.status, 201, 'the upload completed');
  t.equal(res.headers['docker-content-digest'], digest);
  t.equal(res.headers.connection, 'close', 'the connection is not kept for another request');
  const code = await b.stop();
  t.equal(code, 0, 'exit code 0');
  t.match(b.output(), /"msg":"draining"/);
  t.match(b.output(), /"msg":"stopped"/);
  t.notMatch(b.output(), /drain timeout/);

  const again = await startBerth({ root: b.root });
  t.teardown(() => again.kill());
  const blob = await fetch(`${again.url}/v2/drain/test/blobs/${digest}`);
  t.equal(blob.status, 200);
  t.equal(sha256(Buffer.from(await blob.arrayBuffer())), digest, 'readable after the restart, byte for byte');
});

/** GET through an agent, body drained. */
function openRequestDone(url: string, agent: http.Agent): Promise<Reply> {
  const { req, reply } = openRequest(url, 'GET', {}, agent);
  req.end();
  return reply;
}

t.test('a request still running at the end of http.draintimeout is cut, and berth exits 0', async (t) => {
  const b = await startBerth({ env: { REGISTRY_HTTP_DRAINTIMEOUT: '1s', REGISTRY_LOG_LEVEL: 'info' } });
  t.teardown(async () => {
    await b.kill();
    fs.rmSync(b.root, { recursive: true, force: true });
  });
  const location = b.url + (await startUpload(b.url, 'drain/stall'));
  const { req, reply } = openRequest(location, 'PATCH', { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' });
  // Settles when the server cuts the request: an error, not a response.
  const outcome = reply.then(
    (r) => `HTTP ${r.status}`,
    (e: Error) => e,
  );
  req.write(Buffer.alloc(1000, 1));
  await sleep(300);
  const started = Date.now();
  const code = await b.stop();
  const took = Date.now() - started;
  t.equal(code, 0, 'exit code 0');
  t.ok(took >= 900 && took < 8000, `exited after the grace period (${took} ms)`);
  t.type(await outcome, Error, 'the stalled request was cut');
  t.match(b.output(), /drain timeout/);
  req.destroy();

  // What arrived is kept: the client can resume where it was cut.
  const again = await startBerth({ root: b.root });
  t.teardown(() => again.kill());
  const status = await fetch(location.replace(b.url, again.url));
  t.equal(status.status, 204);
  t.equal(status.headers.get('range'), '0-999', 'the bytes received before the cut are kept');
});
