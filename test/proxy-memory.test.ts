// The pull-through cache streams, never buffers: berth's resident memory stays
// within a small bound of its warmed-up baseline while a large uncached blob
// goes from the upstream to a fast client and into the store, and while a
// slow client reads one (the upstream read waits for it: backpressure).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { startBerth, tempDir, type Berth } from './helpers/berth';
import { GeneratedBlob, OciClient } from './helpers/oci-client';
import { procMemMiB } from './helpers/process';
import { startTokenUpstream, type TokenUpstream } from './helpers/upstream';

const MiB = 1 << 20;
const BIG = Number(process.env.BERTH_MEMORY_TEST_MIB ?? 512) * MiB;
const SLOW = 96 * MiB;
const MAX_GROWTH_MIB = 64;
let up: TokenUpstream;
let berth: Berth;
const blobs: Record<string, string> = {};

/** Peak RSS (MiB) of berth while fn runs. */
async function peakDuring(fn: () => Promise<unknown>): Promise<number> {
  const pid = berth.proc.pid!;
  let peak = procMemMiB(pid, 'VmRSS');
  const timer = setInterval(() => (peak = Math.max(peak, procMemMiB(pid, 'VmRSS'))), 50);
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, procMemMiB(pid, 'VmRSS'));
}

t.before(async () => {
  up = await startTokenUpstream();
  const c = await up.pusher(['library/mem']);
  for (const [name, size] of [['warm', 16 * MiB], ['big', BIG], ['slow', SLOW]] as const) blobs[name] = (await c.pushBlob('library/mem', new GeneratedBlob(`mem-${name}`, size))).digest;
  c.close();
  const config = path.join(tempDir(), 'config.yml');
  fs.writeFileSync(config, ['berth:', '  proxies:', '    - prefix: hub', `      remoteurl: ${up.url}`, ''].join('\n'));
  berth = await startBerth({ config });
  // Warm up the paths the large transfers take (a fill, a store commit, a pull from the store).
  const w = new OciClient(berth.url);
  for (let i = 0; i < 2; i++) await w.pullBlob('hub/library/mem', blobs.warm);
  w.close();
  await new Promise((r) => setTimeout(r, 500));
});
t.teardown(async () => {
  await Promise.all([berth?.stop(), up?.stop()]);
});

t.test(`an uncached ${BIG / MiB} MiB blob to a fast client`, { timeout: 300_000 }, async (t) => {
  const baseline = procMemMiB(berth.proc.pid!, 'VmRSS');
  const c = new OciClient(berth.url);
  let got: { status: number; digest?: string } = { status: 0 };
  const peak = await peakDuring(async () => (got = await c.pullBlob('hub/library/mem', blobs.big)));
  c.close();
  t.equal(got.digest, blobs.big, 'every byte, verified');
  t.ok(peak - baseline < MAX_GROWTH_MIB, `RSS ${baseline.toFixed(0)} -> peak ${peak.toFixed(0)} MiB (bound: +${MAX_GROWTH_MIB})`);
});

t.test(`an uncached ${SLOW / MiB} MiB blob to a client reading at ~16 MB/s`, { timeout: 300_000 }, async (t) => {
  const baseline = procMemMiB(berth.proc.pid!, 'VmRSS');
  let bytes = 0;
  const peak = await peakDuring(
    () =>
      new Promise<void>((resolve, reject) => {
        http.get(`${berth.url}/v2/hub/library/mem/blobs/${blobs.slow}`, (res) => {
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            // About 16 MB/s: pause for as long as this chunk takes at that rate.
            res.pause();
            setTimeout(() => res.resume(), chunk.length / 16_000);
          });
          res.on('end', resolve);
          res.on('error', reject);
        });
      }),
  );
  t.equal(bytes, SLOW, 'every byte arrived');
  t.ok(peak - baseline < MAX_GROWTH_MIB, `RSS ${baseline.toFixed(0)} -> peak ${peak.toFixed(0)} MiB (bound: +${MAX_GROWTH_MIB}): the upstream read waited for the client`);
});
