// Benchmark of the pull-through cache (issue #15): image pulls through berth
// against the same pulls straight from the upstream and through CNCF
// distribution 2.8.2 in proxy mode on the same upstream, interleaved round by
// round. The upstream is distribution 2.8.2 behind berth's token service (the
// shape of Docker Hub), reached through a front that shapes the link as a
// registry across the internet is (--bandwidth-mb, --latency-ms; 0 for plain
// loopback). Client to berth and client to distribution go over loopback. See
// bench/README.md, "Pull-through cache".
import fs from 'node:fs';
import http from 'node:http';
import crypto from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startBerth, tempDir } from '../test/helpers/berth';
import { startDistribution } from '../test/helpers/distribution';
import { startFront } from '../test/helpers/front';
import { bufferSource, GeneratedBlob, imageManifest, MANIFEST_ACCEPT, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST } from '../test/helpers/oci-client';
import { procMemMiB, type Managed } from '../test/helpers/process';
import { startTokenUpstream, type TokenUpstream } from '../test/helpers/upstream';
import { fmt, markdownTable, median } from './stats';

const MiB = 1 << 20;
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'image-mib': { type: 'string', default: '64' },
    'warm-pulls': { type: 'string', default: '3' },
    'bandwidth-mb': { type: 'string', default: '100' },
    'latency-ms': { type: 'string', default: '20' },
    'big-mib': { type: 'string', default: '1024' },
    json: { type: 'string' },
  },
});
const num = (k: keyof typeof opt) => {
  const n = Number(opt[k]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} must be a number >= 0`);
  return n;
};
const ROUNDS = num('rounds');
const IMAGE = num('image-mib') * MiB;
const WARM_PULLS = num('warm-pulls');
const BANDWIDTH = num('bandwidth-mb') * 1e6;
const LATENCY = num('latency-ms');
const BIG = num('big-mib') * MiB;
/** Layer sizes as shares of the image, as in a typical image: a base, a runtime, the application. */
const SHARES = [0.5, 0.25, 0.15, 0.1];
/** Blobs a client fetches at once (docker's max-concurrent-downloads). */
const PARALLEL = 3;

const log = (msg: string) => process.stderr.write(`[proxy-bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Puller {
  label: string;
  /** Base URL and repository prefix the image names go under. */
  url: string;
  prefix: string;
  /** Headers for every request (a token for the upstream). */
  headers(repo: string): Promise<Record<string, string>>;
  pid?: number;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** GET url: status, bytes, the digest when asked for, the body when small (a manifest, an error). */
function get(url: string, headers: Record<string, string>, hash: boolean): Promise<{ status: number; bytes: number; body?: Buffer; digest?: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent, headers: { 'user-agent': 'bench', ...headers } }, (res) => {
        const h = hash ? crypto.createHash('sha256') : undefined;
        const keep: Buffer[] = [];
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          h?.update(c);
          if (bytes <= 64 << 10) keep.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode!, bytes, body: Buffer.concat(keep), digest: h && `sha256:${h.digest('hex')}` }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** Pull an image as a client does: the manifest by tag, then its blobs PARALLEL at a time. Returns seconds. */
async function pullImage(p: Puller, repo: string, verify: boolean): Promise<number> {
  const name = p.prefix + repo;
  const t0 = process.hrtime.bigint();
  // Straight from the upstream a client needs a token first, as it does from Docker Hub.
  const headers = await p.headers(repo);
  const m = await get(`${p.url}/v2/${name}/manifests/1`, { ...headers, accept: MANIFEST_ACCEPT }, false);
  if (m.status !== 200) throw new Error(`${p.label}: manifest of ${name}: HTTP ${m.status} ${m.body}`);
  const doc = JSON.parse(m.body!.toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  const queue = [doc.config, ...doc.layers];
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      for (let d = queue.shift(); d; d = queue.shift()) {
        const b = await get(`${p.url}/v2/${name}/blobs/${d.digest}`, headers, verify);
        if (b.status !== 200 || b.bytes !== d.size || (verify && b.digest !== d.digest)) throw new Error(`${p.label}: blob ${d.digest} of ${name}: HTTP ${b.status}, ${b.bytes} bytes, ${b.digest}`);
      }
    }),
  );
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** An image of the configured size under repo, fresh content per seed. */
async function seedImage(up: TokenUpstream, repo: string, sizes: number[]): Promise<number> {
  const c = await up.pusher([repo]);
  const config = bufferSource(JSON.stringify({ architecture: 'amd64', os: 'linux', repo }));
  await c.pushBlob(repo, config);
  const layers = [];
  for (const [i, size] of sizes.entries()) {
    const pushed = await c.pushBlob(repo, new GeneratedBlob(`${repo}-${i}`, size));
    layers.push({ mediaType: OCI_LAYER, digest: pushed.digest, size });
  }
  await c.putManifest(repo, '1', imageManifest({ mediaType: OCI_CONFIG, digest: config.digest, size: config.size }, layers), OCI_MANIFEST);
  c.close();
  return config.size + sizes.reduce((a, b) => a + b, 0);
}

/** Peak RSS growth (MB) of a process while fn runs, sampled every 20 ms. */
async function rssDuring(pid: number, fn: () => Promise<unknown>): Promise<{ before: number; peak: number }> {
  const before = procMemMiB(pid, 'VmRSS');
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, procMemMiB(pid, 'VmRSS'))), 20);
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return { before: (before * MiB) / 1e6, peak: (Math.max(peak, procMemMiB(pid, 'VmRSS')) * MiB) / 1e6 };
}

type Samples = Record<string, number[]>;
const range = (xs: number[]) => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;

async function main() {
  const started = Date.now();
  const procs: Managed[] = [];
  const up = await startTokenUpstream();
  const front = await startFront(up.url, { bytesPerSecond: BANDWIDTH || undefined, latencyMs: LATENCY || undefined });
  try {
    const config = path.join(tempDir('bench-proxy-'), 'config.yml');
    fs.writeFileSync(config, ['berth:', '  proxies:', '    - prefix: hub', `      remoteurl: ${front.url}`, '      ttl: 10m', ''].join('\n'));
    const berth = await startBerth({ config, env: { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' } });
    procs.push(berth);
    const dist = await startDistribution({ extraYaml: ['proxy:', `  remoteurl: ${front.url}`].join('\n') });
    procs.push(dist);
    const token = (repo: string) => up.token([`repository:${repo}:pull`]).then((t) => ({ authorization: `Bearer ${t}` }));
    const pullers: Puller[] = [
      { label: 'berth', url: berth.url, prefix: 'hub/', headers: async () => ({}), pid: berth.proc.pid },
      { label: 'upstream', url: front.url, prefix: '', headers: token },
      { label: 'distribution', url: dist.url, prefix: '', headers: async () => ({}), pid: dist.proc.pid },
    ];
    const sizes = SHARES.map((s) => Math.round(s * IMAGE));
    log(`seeding the upstream: ${ROUNDS} cold images and a warm one of ${IMAGE / MiB} MiB, a ${BIG / MiB} MiB blob`);
    let imageBytes = 0;
    for (let r = 0; r < ROUNDS; r++) imageBytes = await seedImage(up, `library/cold${r}`, sizes);
    await seedImage(up, 'library/warm', sizes);
    await seedImage(up, 'library/big', [BIG]);
    for (const p of pullers) await pullImage(p, 'library/warm', true);
    log(`${pullers.map((p) => `${p.label} ${p.url}`).join('; ')}; link ${BANDWIDTH ? `${BANDWIDTH / 1e6} MB/s` : 'unlimited'}, +${LATENCY} ms per request`);

    const cold: Samples = {};
    const warm: Samples = {};
    const add = (s: Samples, label: string, v: number) => (s[label] ??= []).push(v);
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 ? [...pullers].reverse() : pullers;
      // Cold: an image no cache has seen (the upstream has it in its page cache for all three).
      for (const p of order) add(cold, p.label, imageBytes / 1e6 / (await pullImage(p, `library/cold${r}`, true)));
      for (const p of order) for (let k = 0; k < WARM_PULLS; k++) add(warm, p.label, imageBytes / 1e6 / (await pullImage(p, 'library/warm', false)));
      log(`round ${r + 1}/${ROUNDS}: cold ${pullers.map((p) => `${p.label} ${fmt(cold[p.label][r])}`).join(', ')} MB/s`);
    }
    log('memory: a cold pull of the large blob through each cache');
    const memory: Record<string, { before: number; peak: number }> = {};
    for (const p of [pullers[0], pullers[2]]) {
      const digest = JSON.parse((await get(`${p.url}/v2/${p.prefix}library/big/manifests/1`, { accept: MANIFEST_ACCEPT }, false)).body!.toString()).layers[0].digest;
      memory[p.label] = await rssDuring(p.pid!, async () => {
        const b = await get(`${p.url}/v2/${p.prefix}library/big/blobs/${digest}`, {}, true);
        if (b.digest !== digest) throw new Error(`${p.label}: the large blob came back as ${b.digest}`);
      });
    }

    const rows = [['metric', 'berth', 'upstream', 'distribution proxy', 'berth/upstream', 'target', 'berth/distribution', 'target']];
    const ratioCell = (s: Samples, other: string, target: number) => {
      const ratio = median(s.berth) / median(s[other]);
      const perRound = s.berth.map((v, i) => v / s[other][i]);
      return [`${ratio.toFixed(2)}x (${range(perRound)})`, `>= ${target}x ${ratio >= target ? 'ok' : 'MISS'}`];
    };
    const cell = (xs: number[]) => `${fmt(median(xs))} (${range(xs)})`;
    rows.push(['cold image pull (MB/s)', cell(cold.berth), cell(cold.upstream), cell(cold.distribution), ...ratioCell(cold, 'upstream', 0.9), ...ratioCell(cold, 'distribution', 1.0)]);
    rows.push(['warm image pull (MB/s)', cell(warm.berth), cell(warm.upstream), cell(warm.distribution), ...ratioCell(warm, 'upstream', 1.0), ...ratioCell(warm, 'distribution', 1.5)]);
    const mem = (l: string) => `${fmt(memory[l].before)} → ${fmt(memory[l].peak)}`;
    rows.push([`RSS before → peak, cold ${BIG / MiB} MiB blob (MB)`, mem('berth'), '', mem('distribution'), '', '', '', '']);
    rows.push(['peak RSS of the run (VmHWM, MB)', fmt((procMemMiB(berth.proc.pid!, 'VmHWM') * MiB) / 1e6), '', fmt((procMemMiB(dist.proc.pid!, 'VmHWM') * MiB) / 1e6), '', '', '', '']);
    // Who fetched the first cold image's blobs, by User-Agent (the bench's own pull straight from the upstream is `bench`).
    const fetches = new Map<string, number>();
    for (const r of await up.requests()) if (r.method === 'GET' && /^\/v2\/library\/cold0\/blobs\//.test(r.path)) fetches.set(r.agent, (fetches.get(r.agent) ?? 0) + 1);
    const info =
      `pull-through cache: ${ROUNDS} rounds (medians, range in parentheses), image ${IMAGE / MiB} MiB in ${SHARES.length + 1} blobs, ` +
      `${PARALLEL} blobs at a time; link to the upstream ${BANDWIDTH ? `${BANDWIDTH / 1e6} MB/s` : 'unlimited'} +${LATENCY} ms per request; ` +
      `upstream blob GETs for one cold image of ${SHARES.length + 1} blobs, by User-Agent: ${[...fetches].map(([a, n]) => `${a || '(none)'} ${n}`).join(', ')}; ${new Date().toISOString()}, total ${((Date.now() - started) / 1000).toFixed(0)} s`;
    console.log(`\n${info}\n\n${markdownTable(rows)}\n`);
    if (opt.json) fs.writeFileSync(opt.json, JSON.stringify({ info, cold, warm, memory }, null, 2));
  } catch (e) {
    for (const p of procs) console.error(p.output().slice(-3000));
    throw e;
  } finally {
    agent.destroy();
    for (const p of procs) await p.stop();
    await front.close();
    await up.stop();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
