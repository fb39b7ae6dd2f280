// Health, readiness, /metrics and the JSON logs of a running berth.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { instrumentDriver } from '../storage/instrumented';
import { startBerth, tempDir } from './helpers/berth';
import { pushImage, scrape, sha256, waitFor } from './helpers/ops-client';
import { freePort } from './helpers/process';
import { createLogger } from '../server/log';
import { Metrics } from '../server/metrics';

t.test('health, readiness, metrics and logs', async (t) => {
  const b = await startBerth({ env: { REGISTRY_LOG_LEVEL: 'info' } });
  t.teardown(async () => {
    await b.kill();
    fs.rmSync(b.root, { recursive: true, force: true });
  });

  const health = await fetch(`${b.url}/healthz`);
  t.equal(health.status, 200);
  t.same(await health.json(), { status: 'ok' });
  const ready = await fetch(`${b.url}/readyz`);
  t.equal(ready.status, 200);
  t.match(await ready.json(), { status: 'ready', indexes: { state: 'ready', repositories: 0 } }, 'ready, with the indexes loaded');

  const img = await pushImage(b.url, 'team/app', 'v1');
  // A chunked upload: POST, PATCH, PUT.
  const chunk = Buffer.alloc(100_000, 7);
  const start = await fetch(`${b.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
  const loc = start.headers.get('location')!;
  const patch = await fetch(loc, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream' }, body: new Uint8Array(chunk) });
  t.equal(patch.status, 202);
  const put = await fetch(`${patch.headers.get('location')}?digest=${sha256(chunk)}`, { method: 'PUT' });
  t.equal(put.status, 201);

  const pulled = await fetch(`${b.url}/v2/team/app/blobs/${img.layer.digest}`, {
    headers: { Authorization: 'Bearer secret-token-value', 'X-Request-Id': 'client-chosen-id.1' },
  });
  t.equal(pulled.headers.get('x-request-id'), 'client-chosen-id.1', 'a client request id is kept and echoed');
  t.equal((await pulled.arrayBuffer()).byteLength, img.layer.size);
  for (let i = 0; i < 2; i++) {
    const m = await fetch(`${b.url}/v2/team/app/manifests/v1?token=query-secret`);
    t.equal(m.status, 200);
    await m.arrayBuffer();
  }
  const bad = await fetch(`${b.url}/v2/team/app/manifests/nope`, { headers: { 'X-Request-Id': 'bad id\twith "quotes"' } });
  t.equal(bad.status, 404);
  t.match(bad.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'an unsafe client id is replaced by a fresh one');
  const badId = bad.headers.get('x-request-id');
  await bad.arrayBuffer();

  const m = await scrape(`${b.url}/metrics`);
  const get = (k: string) => m.get(k) ?? 0;
  t.equal(get('berth_http_requests_total{method="PUT",route="/v2/{name}/manifests/{reference}",status="201"}'), 1);
  t.equal(get('berth_http_requests_total{method="GET",route="/v2/{name}/manifests/{reference}",status="200"}'), 2);
  t.equal(get('berth_http_requests_total{method="GET",route="/v2/{name}/manifests/{reference}",status="404"}'), 1);
  t.equal(get('berth_http_requests_total{method="POST",route="/v2/{name}/blobs/uploads/",status="201"}'), 2);
  t.equal(get('berth_http_requests_total{method="PATCH",route="/v2/{name}/blobs/uploads/{uuid}",status="202"}'), 1);
  t.equal(get('berth_http_requests_total{method="GET",route="/readyz",status="200"}'), 1);
  t.equal(get('berth_http_request_duration_seconds_count{method="GET",route="/v2/{name}/blobs/{digest}",status="200"}'), 1);
  t.ok(get('berth_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/v2/{name}/blobs/{digest}",status="200"}') === 1, 'histogram buckets');
  t.equal(get('berth_http_received_bytes_total{route="/v2/{name}/blobs/uploads/{uuid}"}'), chunk.length, 'chunk bytes received');
  t.equal(
    get('berth_http_received_bytes_total{route="/v2/{name}/blobs/uploads/"}'),
    img.layer.size + img.config.size,
    'monolithic upload bytes received',
  );
  t.equal(get('berth_http_received_bytes_total{route="/v2/{name}/manifests/{reference}"}'), img.manifest.length);
  t.equal(get('berth_http_sent_bytes_total{route="/v2/{name}/blobs/{digest}"}'), img.layer.size, 'blob bytes sent');
  t.equal(get('berth_uploads_in_progress'), 0);
  t.ok(get('berth_storage_operation_duration_seconds_count{driver="filesystem",operation="move"}') >= 3, 'storage ops by driver and operation');
  t.ok(get('berth_storage_operation_duration_seconds_count{driver="filesystem",operation="write"}') >= 1);
  t.equal(get('berth_cache_lookups_total{cache="manifest",result="hit"}'), 2, 'manifest reads after the push come from the cache');
  t.equal(get('berth_cache_hit_ratio{cache="manifest"}'), 1);
  t.ok(m.has('process_resident_memory_bytes'), 'default process metrics');
  const text = [...m.keys()].join('\n');
  t.notMatch(text, /team\/app|sha256:/, 'no repository names or digests in metric labels');

  // Readiness follows the storage backend.
  const moved = `${b.root}.away`;
  fs.renameSync(b.root, moved);
  const down = await fetch(`${b.url}/readyz`);
  t.equal(down.status, 503);
  t.match(await down.json(), { status: 'not ready', reason: /^storage: / });
  t.equal((await fetch(`${b.url}/healthz`)).status, 200, 'still alive');
  // The index's background work may have written into a new root meanwhile (a lease, usage): drop it.
  fs.rmSync(b.root, { recursive: true, force: true });
  fs.renameSync(moved, b.root);
  t.equal((await fetch(`${b.url}/readyz`)).status, 200, 'ready again');

  await new Promise((r) => setTimeout(r, 200));
  const lines = b
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(lines.length >= 10, 'JSON lines');
  const access = lines.filter((l) => l.msg === 'request');
  const pull = access.find((l) => l.requestId === 'client-chosen-id.1');
  t.match(pull, {
    level: 'info',
    method: 'GET',
    route: '/v2/{name}/blobs/{digest}',
    status: 200,
    repository: 'team/app',
    digest: img.layer.digest,
    bytesOut: img.layer.size,
    ms: Number,
  });
  t.match(
    access.find((l) => l.method === 'PUT' && l.route === '/v2/{name}/manifests/{reference}'),
    { status: 201, repository: 'team/app', digest: img.digest, bytesIn: img.manifest.length },
  );
  t.match(access.find((l) => l.requestId === badId), { status: 404 });
  t.notOk(access.some((l) => l.path === '/healthz'), 'probes are access-logged at debug level only');
  const all = b.output();
  t.notMatch(all, /secret-token-value|query-secret|Authorization|Bearer/i, 'no credentials, auth headers or query strings in logs');
});

t.test('metrics on the debug listener only when http.debug.addr is set', async (t) => {
  const debugPort = await freePort();
  const b = await startBerth({ env: { REGISTRY_HTTP_DEBUG_ADDR: `127.0.0.1:${debugPort}`, REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH: '/prom' } });
  t.teardown(async () => {
    await b.kill();
    fs.rmSync(b.root, { recursive: true, force: true });
  });
  await pushImage(b.url, 'x', 'latest');
  t.equal((await fetch(`${b.url}/prom`)).status, 404, 'not on the main listener');
  const m = await scrape(`http://127.0.0.1:${debugPort}/prom`);
  t.equal(m.get('berth_http_requests_total{method="PUT",route="/v2/{name}/manifests/{reference}",status="201"}'), 1);
  t.equal((await fetch(`http://127.0.0.1:${debugPort}/readyz`)).status, 200);
  t.equal((await fetch(`http://127.0.0.1:${debugPort}/healthz`)).status, 200);
});

t.test('metrics can be turned off', async (t) => {
  const b = await startBerth({ env: { REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: 'false' } });
  t.teardown(async () => {
    await b.kill();
    fs.rmSync(b.root, { recursive: true, force: true });
  });
  t.equal((await fetch(`${b.url}/metrics`)).status, 404);
});

t.test('storage errors and GC runs are counted', async (t) => {
  const root = tempDir();
  const metrics = new Metrics();
  const driver = instrumentDriver(new FilesystemDriver({ rootdirectory: root }), metrics.storage);
  await driver.putContent('/a/b', Buffer.from('x'));
  await t.rejects(driver.getContent('/missing'), { name: 'PathNotFoundError' });
  await t.rejects(driver.getContent('/a/../etc'), /invalid storage path/);
  const w = await driver.writer('/w', false);
  await w.write(Buffer.from('abc'));
  t.equal(w.size, 3, 'the wrapped writer reports its size');
  await w.commit();
  metrics.gcRun({ ok: true, bytesFreed: 1234, blobsDeleted: 2, seconds: 1.5 });
  metrics.gcRun({ ok: false });
  const { body } = await metrics.render();
  t.match(body, /berth_storage_errors_total\{driver="filesystem",operation="getContent"\} 1\n/, 'a real failure counts');
  t.match(body, /berth_storage_operation_duration_seconds_count\{driver="filesystem",operation="getContent"\} 2\n/);
  t.match(body, /berth_storage_operation_duration_seconds_count\{driver="filesystem",operation="commit"\} 1\n/);
  t.match(body, /berth_gc_runs_total\{result="ok"\} 1\n/);
  t.match(body, /berth_gc_runs_total\{result="error"\} 1\n/);
  t.match(body, /berth_gc_freed_bytes_total 1234\n/);
  t.match(body, /berth_gc_deleted_blobs_total 2\n/);
  t.match(body, /berth_gc_last_run_duration_seconds 1.5\n/);
});

t.test('a request whose socket is gone at its end keeps its access-log line', async (t) => {
  // A PATCH whose write fails under it (test/fixtures/disk-faults.ts; on S3, an outage):
  // the for-await over the body ends early and destroys the request, which drops
  // req.socket; the line used to be lost to "Cannot read properties of null".
  const toggle = path.join(tempDir(), 'fail-write');
  const b = await startBerth({
    nodeArgs: ['--require', path.resolve(__dirname, 'fixtures/disk-faults.js')],
    env: { REGISTRY_LOG_LEVEL: 'info', BERTH_TEST_FAIL_WRITE: toggle },
  });
  // kill: the connection of the failed PATCH stays open with its body unread, which a
  // drain waits out (http.draintimeout)
  t.teardown(() => b.kill());
  const start = await fetch(`${b.url}/v2/faulty/disk/blobs/uploads/`, { method: 'POST' });
  fs.writeFileSync(toggle, '/_uploads/');
  const body = Buffer.alloc(4 << 20, 1);
  const patch = await fetch(start.headers.get('location')!, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body });
  t.ok(patch.status >= 500, `the PATCH is answered ${patch.status}`);
  const id = patch.headers.get('x-request-id');
  let line: Record<string, unknown> | undefined;
  await waitFor('its access-log line', async () => {
    line = b.output().split('\n').filter((l) => l.includes(`"requestId":"${id}"`)).map((l) => JSON.parse(l)).find((l) => l.msg === 'request');
    return line !== undefined;
  }, 5000).catch(() => t.fail(`no access-log line for ${id}:\n${b.output()}`));
  t.match(line, { method: 'PATCH', status: patch.status, remoteAddr: '127.0.0.1' });
  t.notMatch(b.output(), /bookkeeping failed/);
});

t.test('log lines are JSON with the base fields; levels filter', async (t) => {
  const lines: string[] = [];
  const out = { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream;
  const logger = createLogger('info', { service: 'berth' }, out);
  logger.warn('kept', { key: 'v', requestId: 'req-42' });
  logger.debug('filtered out');
  logger.child({ part: 'gc' }).info('child');
  const parsed = lines.map((l) => JSON.parse(l));
  t.equal(parsed.length, 2);
  t.match(parsed[0], { level: 'warn', msg: 'kept', service: 'berth', requestId: 'req-42', key: 'v', time: /^\d{4}-/ });
  t.match(parsed[1], { level: 'info', msg: 'child', service: 'berth', part: 'gc' });
});

t.test('scheduled GC runs in serve show up in the metrics', async (t) => {
  const b = await startBerth({ env: { REGISTRY_BERTH_GC_ENABLED: 'true', REGISTRY_BERTH_GC_INTERVAL: '300ms', REGISTRY_BERTH_GC_MINAGE: '0s' } });
  t.teardown(async () => {
    await b.kill();
    fs.rmSync(b.root, { recursive: true, force: true });
  });
  const img = await pushImage(b.url, 'gc/app', 'v1');
  const del = await fetch(`${b.url}/v2/gc/app/manifests/${img.digest}`, { method: 'DELETE' });
  t.equal(del.status, 202);
  const freed = img.layer.size + img.config.size + img.manifest.length;
  let m = new Map<string, number>();
  await waitFor('a GC run that frees the image', async () => {
    m = await scrape(`${b.url}/metrics`);
    return (m.get('berth_gc_freed_bytes_total') ?? 0) >= freed;
  });
  t.equal(m.get('berth_gc_freed_bytes_total'), freed, 'bytes freed: layer, config and manifest');
  t.equal(m.get('berth_gc_deleted_blobs_total'), 3);
  t.ok((m.get('berth_gc_runs_total{result="ok"}') ?? 0) >= 1);
  t.ok((m.get('berth_gc_last_run_timestamp_seconds') ?? 0) > Date.now() / 1000 - 60);
});
