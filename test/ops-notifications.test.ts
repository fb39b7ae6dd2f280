// Webhook notifications against local receivers: distribution's envelope,
// headers, filters; delivery that never slows requests; retries while a
// receiver fails, and counted drops when its queue overflows.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startBerth, tempDir } from './helpers/berth';
import { pushBlob, pushImage, scrape, sha256, waitFor } from './helpers/ops-client';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  events: Array<Record<string, any>>;
}

/** A webhook receiver: records envelopes it accepts; 'fail' answers 503, 'hang' never answers. */
async function receiver(t: { teardown(fn: () => void): void }) {
  const state = { mode: 'ok' as 'ok' | 'fail' | 'hang', accepted: [] as Received[], failed: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (state.mode === 'hang') return;
      if (state.mode === 'fail') {
        state.failed++;
        res.writeHead(503).end();
        return;
      }
      state.accepted.push({ path: req.url!, headers: req.headers, events: JSON.parse(Buffer.concat(chunks).toString()).events });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const events = (p = '/events') => state.accepted.filter((r) => r.path === p).flatMap((r) => r.events);
  return { state, url, events };
}

/** berth with this config file (YAML), removed with its store when the test ends. */
async function berthWith(t: Test, yaml: string, env?: Record<string, string>) {
  const dir = tempDir('berth-conf-');
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, yaml);
  const b = await startBerth({ config, env });
  t.teardown(async () => {
    await b.kill();
    fs.rmSync(b.root, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return b;
}

t.test('push, pull, mount and delete events in distribution format', async (t) => {
  const good = await receiver(t);
  const stuck = await receiver(t);
  stuck.state.mode = 'hang';
  const b = await berthWith(t, `
notifications:
  endpoints:
    - name: good
      url: ${good.url}/events
      headers:
        Authorization: [Bearer hook-secret]
      timeout: 2s
      threshold: 2
      backoff: 100ms
    - name: nopulls
      url: ${good.url}/nopulls
      ignore:
        actions: [pull]
      ignoredmediatypes: [application/octet-stream]
    - name: stuck
      url: ${stuck.url}/events
      timeout: 10s
    - name: off
      disabled: true
      url: ${good.url}/off
`);

  const began = Date.now();
  const img = await pushImage(b.url, 'hooks/app', 'v1');
  const pull = await fetch(`${b.url}/v2/hooks/app/manifests/v1`, { headers: { 'X-Request-Id': 'pull-1', 'User-Agent': 'hook-test/1.0' } });
  t.equal(pull.status, 200);
  await pull.arrayBuffer();
  const head = await fetch(`${b.url}/v2/hooks/app/manifests/v1`, { method: 'HEAD' });
  t.equal(head.status, 200, 'HEAD: no event');
  const blob = await fetch(`${b.url}/v2/hooks/app/blobs/${img.layer.digest}`);
  await blob.arrayBuffer();
  const mount = await fetch(`${b.url}/v2/hooks/copy/blobs/uploads/?mount=${img.layer.digest}&from=hooks/app`, { method: 'POST' });
  t.equal(mount.status, 201);
  const del = await fetch(`${b.url}/v2/hooks/app/manifests/${img.digest}`, { method: 'DELETE' });
  t.equal(del.status, 202);
  const took = Date.now() - began;
  t.ok(took < 5000, `requests do not wait for a receiver that hangs (${took} ms; its timeout is 10 s)`);

  await waitFor('7 events', () => good.events().length >= 7);
  await new Promise((r) => setTimeout(r, 300));
  const events = good.events();
  t.equal(events.length, 7, 'one event per push, pull, mount and delete');
  const env = good.state.accepted[0];
  t.equal(env.headers['content-type'], 'application/vnd.docker.distribution.events.v1+json');
  t.equal(env.headers.authorization, 'Bearer hook-secret', 'configured headers are sent');

  const [pushConfig, pushLayer, pushManifest, pullManifest, pullBlob, mounted, deleted] = events;
  t.match(pushConfig, { action: 'push', target: { mediaType: 'application/octet-stream', digest: img.config.digest, size: img.config.size, repository: 'hooks/app' } });
  t.match(pushLayer, { action: 'push', target: { digest: img.layer.digest, size: img.layer.size, url: `${b.url}/v2/hooks/app/blobs/${img.layer.digest}` } });
  t.match(pushManifest, {
    action: 'push',
    target: {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: img.manifest.length,
      digest: img.digest,
      repository: 'hooks/app',
      url: `${b.url}/v2/hooks/app/manifests/${img.digest}`,
      tag: 'v1',
    },
    request: { method: 'PUT', host: b.host, addr: /^127\.0\.0\.1:\d+$/ },
  });
  t.match(pullManifest, {
    action: 'pull',
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.digest, size: img.manifest.length, tag: 'v1' },
    request: { id: 'pull-1', method: 'GET', useragent: 'hook-test/1.0' },
  });
  t.match(pullBlob, { action: 'pull', target: { digest: img.layer.digest, size: img.layer.size, repository: 'hooks/app' } });
  t.match(mounted, { action: 'mount', target: { digest: img.layer.digest, repository: 'hooks/copy', fromRepository: 'hooks/app', size: img.layer.size } });
  t.match(deleted, { action: 'delete', target: { digest: img.digest, repository: 'hooks/app' } });
  for (const e of events) {
    t.match(e, { id: /^[0-9a-f-]{36}$/, timestamp: String, actor: {}, source: { instanceID: events[0].source.instanceID, addr: new RegExp(`:${b.port}$`) } });
  }
  t.equal(new Set(events.map((e) => e.id)).size, 7, 'event ids are unique');

  const filtered = good.events('/nopulls');
  t.same(
    filtered.map((e) => `${e.action} ${e.target.digest}`),
    [`push ${img.digest}`, `delete ${img.digest}`],
    'ignore.actions and ignoredmediatypes filter events',
  );
  t.equal(good.events('/off').length, 0, 'a disabled endpoint gets nothing');

  const m = await scrape(`${b.url}/metrics`);
  t.equal(m.get('berth_notifications_sent_total{endpoint="good"}'), 7);
  t.equal(m.get('berth_notifications_pending{endpoint="stuck"}'), 7, 'the hanging endpoint holds its events');
});

t.test('a receiver that fails for a while gets every queued event after it recovers; overflow is counted', async (t) => {
  const flaky = await receiver(t);
  flaky.state.mode = 'fail';
  const b = await berthWith(t, `
notifications:
  endpoints:
    - name: flaky
      url: ${flaky.url}/events
      timeout: 1s
      threshold: 1
      backoff: 100ms
      queuesize: 4
`, { REGISTRY_LOG_LEVEL: 'info' });
  const metric = async (name: string) => (await scrape(`${b.url}/metrics`)).get(`${name}{endpoint="flaky"}`) ?? 0;
  const blobs = async (n: number) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await pushBlob(b.url, 'flaky/app', crypto.randomBytes(64)));
    return out;
  };

  const first = await blobs(3);
  await waitFor('failed attempts', () => flaky.state.failed >= 2);
  t.equal(await metric('berth_notifications_pending'), 3, 'queued while the receiver fails');
  t.ok((await metric('berth_notifications_failures_total')) >= 2, 'failed attempts are counted');
  flaky.state.mode = 'ok';
  await waitFor('delivery after recovery', () => flaky.events().length >= 3);
  t.same(
    flaky.events().map((e) => e.target.digest),
    first,
    'all events delivered, in order, after recovery',
  );

  flaky.state.mode = 'fail';
  const failedBefore = flaky.state.failed;
  const second = await blobs(6);
  await waitFor('a failed attempt', () => flaky.state.failed > failedBefore);
  t.equal(await metric('berth_notifications_dropped_total'), 2, 'events beyond the queue bound are dropped and counted');
  t.equal(await metric('berth_notifications_pending'), 4);
  flaky.state.mode = 'ok';
  await waitFor('delivery after the second recovery', () => flaky.events().length >= 7);
  await new Promise((r) => setTimeout(r, 300));
  t.same(
    flaky.events().map((e) => e.target.digest),
    [...first, ...second.slice(0, 4)],
    'the queued events arrive; the overflow does not',
  );
  t.equal(await metric('berth_notifications_sent_total'), 7);
  t.equal(await metric('berth_notifications_pending'), 0);
  t.match(b.output(), /notification endpoint failing: backing off/);
  t.match(b.output(), /notification endpoint recovered/);
});

t.test('events still queued at shutdown are delivered during the drain', async (t) => {
  const late = await receiver(t);
  late.state.mode = 'fail';
  const b = await berthWith(t, `
notifications:
  endpoints:
    - name: late
      url: ${late.url}/events
      threshold: 1
      backoff: 10s
`);
  const d = await pushBlob(b.url, 'late/app', Buffer.from('late'));
  t.equal(d, sha256('late'));
  await waitFor('a failed attempt', () => late.state.failed >= 1);
  late.state.mode = 'ok';
  // The next retry is 10 s away; shutdown retries at once.
  t.equal(await b.stop(), 0);
  t.same(
    late.events().map((e) => e.target.digest),
    [d],
    'delivered before exit',
  );
});
