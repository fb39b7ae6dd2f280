// Memory stays flat with blob size: a 2 GiB blob is pushed (streamed from a
// generator, one PATCH) and pulled back (hashed while streaming) while the
// server's resident set is sampled from /proc; it must stay within a small
// bound of its warmed-up baseline.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { ContentStore } from '../storage/store';
import { NODE_FLAGS, startBerth, tempDir } from './helpers/berth';
import { putImage } from './helpers/gc-fixture';
import { blob } from './helpers/registry-client';
import { GeneratedBlob, OciClient, sourceDigest } from './helpers/oci-client';
import { procMemMiB } from './helpers/process';

const MiB = 1 << 20;
const SIZE = Number(process.env.BERTH_MEMORY_TEST_MIB ?? 2048) * MiB;
const MAX_GROWTH_MIB = 64;

t.test(`a ${SIZE / MiB} MiB push and pull keep the server's memory flat`, { timeout: 240_000 }, async (t) => {
  const root = tempDir('berth-memory-');
  const server = await startBerth({ root });
  t.teardown(() => server.stop());
  const c = new OciClient(server.url);
  t.teardown(() => c.close());
  const pid = server.proc.pid!;

  // Warm up every code path the big transfer takes, so the baseline includes
  // loaded code and steady-state buffers rather than a cold start.
  for (let i = 0; i < 3; i++) {
    const warm = new GeneratedBlob(`warm-${i}`, 16 * MiB);
    await c.pushBlobChunked('memory/test', warm, warm.size);
    await c.pushBlob('memory/test', new GeneratedBlob(`warm-mono-${i}`, 4 * MiB));
    t.equal((await c.pullBlob('memory/test', warm.digest!)).digest, warm.digest, 'warm-up blob round-trips');
  }
  await new Promise((r) => setTimeout(r, 500));
  const baseline = procMemMiB(pid, 'VmRSS');

  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, procMemMiB(pid, 'VmRSS'));
  }, 50);
  t.teardown(() => clearInterval(sampler));

  const blob = new GeneratedBlob('memory-2g', SIZE);
  let t0 = Date.now();
  const pushed = await c.pushBlobChunked('memory/test', blob, SIZE);
  const pushSecs = (Date.now() - t0) / 1000;
  const afterPush = peak;
  t0 = Date.now();
  const pulled = await c.pullBlob('memory/test', pushed.digest);
  const pullSecs = (Date.now() - t0) / 1000;
  clearInterval(sampler);
  peak = Math.max(peak, procMemMiB(pid, 'VmRSS'));

  t.same(pulled, { status: 200, digest: await sourceDigest(blob), size: SIZE }, 'the pulled blob is byte-identical');
  const growth = peak - baseline;
  t.comment(
    `baseline RSS ${baseline.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB (during push ${afterPush.toFixed(1)}), growth ${growth.toFixed(1)} MiB; ` +
      `push ${((SIZE / 1e6) / pushSecs).toFixed(0)} MB/s, pull ${((SIZE / 1e6) / pullSecs).toFixed(0)} MB/s`,
  );
  t.ok(growth < MAX_GROWTH_MIB, `RSS grew ${growth.toFixed(1)} MiB (< ${MAX_GROWTH_MIB} MiB) over a ${SIZE / MiB} MiB push and pull`);
});

// The V8 flags decide how often berth runs full collections while streaming
// (see README "Memory"); every way of starting it must pass the same ones.
t.test('npm start, the bin and the container image run node with the same flags as the tests', async (t) => {
  const src = path.resolve(__dirname, '../..');
  const read = (f: string) => fs.readFileSync(path.join(src, f), 'utf8');
  const flags = (s: string) => s.match(/--[a-z-]+=\d+/g) ?? [];
  const start = JSON.parse(read('package.json')).scripts.start as string;
  t.same(flags(start), NODE_FLAGS, 'npm start');
  t.same(flags(read('server/cli.ts').split('\n')[0]), NODE_FLAGS, "the bin's shebang");
  t.same(flags(read('deploy/Dockerfile').split('\n').find((l) => l.startsWith('ENTRYPOINT'))!), NODE_FLAGS, "the image's ENTRYPOINT");
});

// The manifest cache is bounded by the bytes it counts; an entry that is a
// slice of Node's 8 KiB Buffer pool would keep the whole slab alive.
t.test('a cached manifest holds its own bytes, not a slice of a larger buffer', async (t) => {
  const root = tempDir('berth-mcache-');
  const store = new ContentStore(new FilesystemDriver({ rootdirectory: root }));
  const pushed = await putImage(store, 'mem/app', 'v1', [blob('{"n":1}'), blob('layer')]);
  t.ok(pushed.bytes.length < 4096, 'a small manifest (Buffer.from and concat put those in the shared pool)');
  for (const [how, get] of [
    ['after a PUT', () => store.getManifest('mem/app', 'v1')],
    ['after a read from storage', () => new ContentStore(new FilesystemDriver({ rootdirectory: root })).getManifest('mem/app', 'v1')],
  ] as const) {
    const m = await get();
    t.ok(m.bytes.equals(pushed.bytes), `${how}: the content`);
    t.equal(m.bytes.buffer.byteLength, m.bytes.length, `${how}: its memory is its own`);
  }
});
