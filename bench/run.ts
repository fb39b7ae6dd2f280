// Benchmark: the same workloads against berth and CNCF distribution 2.8.2,
// started side by side on loopback on fresh storage, interleaved round by
// round (A,B then B,A, ...) so drifting machine load hits both alike; the
// table shows medians and the ratio first/second. See bench/README.md.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startBerth } from '../test/helpers/berth';
import { mustRun } from '../test/helpers/clients';
import { startDistribution } from '../test/helpers/distribution';
import { startS3, type S3Server } from '../test/helpers/s3';
import { S3Driver } from '../storage/drivers/s3';
import { fmt, markdownTable, median } from './report';
import { procCpuSeconds, procMemMiB, type Managed } from '../test/helpers/process';
import {
  GeneratedBlob,
  MANIFEST_ACCEPT,
  OCI_CONFIG,
  OCI_LAYER,
  OCI_MANIFEST,
  OciClient,
  bufferSource,
  imageManifest,
  sha256,
  sourceDigest,
} from '../test/helpers/oci-client';

const MiB = 1 << 20;

function usage(msg: string): never {
  console.error(`bench: ${msg} (see --help)`);
  process.exit(2);
}

const options = {
  targets: { type: 'string', default: 'berth,distribution' },
  backend: { type: 'string', default: 'filesystem' },
  // Defaults of rounds, blob-mib, list-requests and only depend on the backend (see `backends`).
  rounds: { type: 'string' },
  'blob-mib': { type: 'string' },
  'chunk-mib': { type: 'string', default: '8' },
  'pull-clients': { type: 'string', default: '8' },
  connections: { type: 'string', default: '64' },
  seconds: { type: 'string', default: '5' },
  repos: { type: 'string', default: '2000' },
  tags: { type: 'string', default: '500' },
  'list-requests': { type: 'string' },
  only: { type: 'string' },
  'cpu-prof': { type: 'string' },
  blobcache: { type: 'boolean', default: false },
  json: { type: 'string' },
  dir: { type: 'string', default: os.tmpdir() },
  help: { type: 'boolean', default: false },
} as const;

const opt = (() => {
  try {
    return parseArgs({ options }).values;
  } catch (e) {
    usage((e as Error).message);
  }
})();

if (opt.help) {
  console.log(fs.readFileSync(path.resolve(__dirname, '../../bench/README.md'), 'utf8'));
  process.exit(0);
}

interface Server {
  label: string;
  /** What the server printed, and its exit code or signal if it is gone. */
  diagnose(): string;
  url: string;
  pid: number;
  client: OciClient;
  stop(): Promise<unknown>;
}

type Kind = 'berth' | 'distribution';

/** A file of a distribution-layout store: key under the storage root, content. */
type SeedFile = [key: string, data: Buffer];

interface Defaults {
  rounds: string;
  'blob-mib': string;
  'list-requests': string;
  only: string;
}

/**
 * A storage backend starts one server of a kind on fresh, private storage
 * holding the seed files; `cleanup` removes that storage, `close` anything the
 * backend shares between both servers. Selected with --backend.
 */
interface Backend {
  defaults: Defaults;
  /** Throughput targets, berth/distribution. */
  targets: { push: number; pull: number };
  start(kind: Kind, label: string, seed: Iterable<SeedFile>): Promise<Managed & { cleanup(): void }>;
  close?(): Promise<void>;
}

const berthNodeArgs = () => (opt['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(opt['cpu-prof'])}`] : []);

/** Runs put on every item with at most `concurrency` in flight. */
async function bounded<T>(items: Iterable<T>, concurrency: number, put: (item: T) => Promise<void>) {
  const it = items[Symbol.iterator]();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let r = it.next(); !r.done; r = it.next()) await put(r.value);
    }),
  );
}

const filesystem: Backend = {
  defaults: { rounds: '5', 'blob-mib': '128', 'list-requests': '10', only: 'push,pull,manifest,catalog,walk,tags' },
  targets: { push: 1.5, pull: 1.0 },
  async start(kind, _label, seed) {
    const root = fs.mkdtempSync(path.join(opt.dir!, `bench-${kind}-`));
    const cleanup = () => fs.rmSync(root, { recursive: true, force: true });
    try {
      for (const [key, data] of seed) {
        fs.mkdirSync(path.dirname(path.join(root, key)), { recursive: true });
        fs.writeFileSync(path.join(root, key), data);
      }
      const m = kind === 'berth' ? await startBerth({ root, nodeArgs: berthNodeArgs() }) : await startDistribution({ root });
      return Object.assign(m, { cleanup });
    } catch (err) {
      cleanup();
      throw err;
    }
  },
};

/**
 * One Swift s3api store (deploy/s3/s3-server) shared by both servers, each
 * under its own rootdirectory of the one bucket, both with the same part size
 * and with redirects disabled, so that blob pulls stream through the registry
 * (with redirects on, a client would fetch from Swift and the registry would
 * not be measured at all).
 */
function s3Backend(): Backend {
  let store: Promise<S3Server> | undefined;
  const CHUNK_SIZE = 10 * MiB; // both drivers' default, set explicitly
  return {
    // Every S3 request goes through one Swift proxy on the same 2 cores: smaller
    // blobs and fewer rounds keep the run to a few minutes. No full catalog walk:
    // distribution lists the store from the start for every page, so one walk
    // of 20 pages takes it minutes.
    defaults: { rounds: '2', 'blob-mib': '32', 'list-requests': '3', only: 'push,pull,catalog' },
    targets: { push: 1.2, pull: 1.2 },
    async start(kind, label, seed) {
      const s3 = await (store ??= startS3());
      const root = `/bench-${label.replace('#', '-')}`;
      // The helpers want a local root even when storage is elsewhere; keep it ours to remove.
      const scratch = fs.mkdtempSync(path.join(opt.dir!, `bench-${kind}-`));
      const cleanup = () => fs.rmSync(scratch, { recursive: true, force: true });
      try {
        const driver = new S3Driver(s3.options({ rootdirectory: root }));
        const t0 = process.hrtime.bigint();
        let n = 0;
        try {
          await bounded(seed, 32, ([key, data]) => (n++, driver.putContent(`/${key}`, data)));
        } finally {
          await driver.close();
        }
        log(`${label}: wrote ${n} fixture objects under s3://${s3.bucket}${root} in ${seconds(t0).toFixed(1)} s`);
        const m =
          kind === 'berth'
            ? await startBerth({
                root: scratch,
                nodeArgs: berthNodeArgs(),
                env: s3.env({
                  REGISTRY_STORAGE_S3_ROOTDIRECTORY: root,
                  REGISTRY_STORAGE_S3_CHUNKSIZE: String(CHUNK_SIZE),
                  REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
                  REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false',
                  ...(opt.blobcache && { REGISTRY_BERTH_BLOBCACHE_ROOTDIRECTORY: path.join(scratch, 'blobcache') }),
                }),
              })
            : await startDistribution({
                root: scratch,
                storageYaml: s3.distributionStorage(root, [`    chunksize: ${CHUNK_SIZE}`]),
              });
        return Object.assign(m, { cleanup });
      } catch (err) {
        cleanup();
        throw err;
      }
    },
    async close() {
      // Stopping the store removes its data, both prefixes included.
      if (store) await (await store).stop();
    },
  };
}

const backends: Record<string, Backend> = { filesystem, s3: s3Backend() };
const BACKEND = backends[opt.backend!] ?? usage(`unknown --backend ${opt.backend}; known: ${Object.keys(backends).join(', ')}`);

const num = (k: keyof typeof opt) => {
  const n = Number(opt[k] ?? BACKEND.defaults[k as keyof Defaults]);
  if (!Number.isFinite(n) || n <= 0) usage(`--${k} must be a positive number`);
  return n;
};
const ROUNDS = num('rounds');
const BLOB = Math.round(num('blob-mib') * MiB);
const CHUNK = Math.round(num('chunk-mib') * MiB);
const PULLERS = num('pull-clients');
// Per server and round: a first read needs a fresh push, a repeat pull does not.
const FIRST_READS_PER_ROUND = 3;
const PULLS_PER_ROUND = 8;
const CONNS = num('connections');
const SECONDS = num('seconds');
const REPOS = num('repos');
const TAGS = num('tags');
const LIST_REQS = num('list-requests');
const ONLY = new Set((opt.only ?? BACKEND.defaults.only).split(','));

const repoName = (i: number) => `catalog/r${String(i).padStart(5, '0')}`;
const tagName = (i: number) => `t${String(i).padStart(5, '0')}`;

/**
 * The catalog and tag-list fixtures, written in distribution's v2 layout
 * before the servers start: REPOS repositories sharing one image tagged v1,
 * and bench/tags with TAGS tags. Pushing them through distribution's fsyncs
 * would take minutes of the bench's budget.
 */
function* seedFiles(): Generator<SeedFile> {
  const v2 = 'docker/registry/v2';
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const layer = Buffer.alloc(4096, 7);
  const blobs = [
    { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
    { mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length },
  ];
  const manifest = imageManifest(blobs[0], [blobs[1]]);
  const mdigest = sha256(manifest);
  const hex = (d: string) => d.slice('sha256:'.length);
  for (const [d, data] of [[blobs[0].digest, config], [blobs[1].digest, layer], [mdigest, manifest]] as const) {
    yield [`${v2}/blobs/sha256/${hex(d).slice(0, 2)}/${hex(d)}/data`, data];
  }
  const link = (d: string) => Buffer.from(d);
  const repo = function* (name: string, tags: string[]): Generator<SeedFile> {
    const r = `${v2}/repositories/${name}`;
    for (const b of blobs) yield [`${r}/_layers/sha256/${hex(b.digest)}/link`, link(b.digest)];
    yield [`${r}/_manifests/revisions/sha256/${hex(mdigest)}/link`, link(mdigest)];
    for (const t of tags) {
      yield [`${r}/_manifests/tags/${t}/current/link`, link(mdigest)];
      yield [`${r}/_manifests/tags/${t}/index/sha256/${hex(mdigest)}/link`, link(mdigest)];
    }
  };
  if (ONLY.has('catalog') || ONLY.has('walk')) for (let i = 0; i < REPOS; i++) yield* repo(repoName(i), ['v1']);
  if (ONLY.has('tags')) yield* repo('bench/tags', Array.from({ length: TAGS }, (_, i) => tagName(i)));
}

async function startServer(kind: Kind, label: string): Promise<Server & { cleanup(): void }> {
  const m = await BACKEND.start(kind, label, seedFiles());
  const client = new OciClient(m.url, { maxSockets: Math.max(PULLERS, 8) });
  return {
    label,
    url: m.url,
    pid: m.proc.pid!,
    client,
    diagnose: () => `${label}: exit ${m.proc.exitCode ?? m.proc.signalCode ?? '(running)'}\n${m.output().slice(-4000)}`,
    stop: async () => {
      client.close();
      return m.stop();
    },
    cleanup: m.cleanup,
  };
}

// ---- results ----

interface Metric {
  name: string;
  unit: string;
  /** How the ratio first/second is judged. */
  target?: { op: '>=' | '<='; ratio: number };
  /** An absolute bound on the first target (e.g. berth's RSS). */
  limit?: { op: '<='; value: number };
  samples: Map<string, number[]>;
}

const metrics: Metric[] = [];

function metric(name: string, unit: string, extra: Pick<Metric, 'target' | 'limit'> = {}): Metric {
  const m: Metric = { name, unit, ...extra, samples: new Map() };
  metrics.push(m);
  return m;
}

function record(m: Metric, s: Server, v: number) {
  const list = m.samples.get(s.label) ?? [];
  list.push(v);
  m.samples.set(s.label, list);
}

/** Runs fn for each server, ROUNDS times, alternating which goes first. */
async function interleaved(servers: Server[], fn: (s: Server, round: number) => Promise<void>) {
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 ? [...servers].reverse() : servers;
    for (const s of order) await fn(s, r);
  }
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

function log(msg: string) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ---- workloads ----

/** Wall-clock and server CPU seconds taken by fn. */
async function timed(s: Server, fn: () => Promise<unknown>): Promise<{ secs: number; cpu: number }> {
  const cpu0 = procCpuSeconds(s.pid);
  const t0 = process.hrtime.bigint();
  await fn();
  return { secs: seconds(t0), cpu: procCpuSeconds(s.pid) - cpu0 };
}

// Server CPU per GB is steadier than MB/s on a loaded machine, and tells
// waiting (I/O, scheduling) apart from work.
async function benchPush(servers: Server[]) {
  const mono = metric('monolithic push', 'MB/s', { target: { op: '>=', ratio: BACKEND.targets.push } });
  const monoCpu = metric('  server CPU, monolithic push', 'CPU s/GB');
  const chunked = metric(`chunked push (${CHUNK / MiB} MiB chunks)`, 'MB/s', { target: { op: '>=', ratio: BACKEND.targets.push } });
  const chunkedCpu = metric('  server CPU, chunked push', 'CPU s/GB');
  await interleaved(servers, async (s, r) => {
    // A fresh blob per server and round: nothing may be deduplicated away.
    const a = new GeneratedBlob(`mono-${s.label}-${r}`, BLOB);
    await sourceDigest(a);
    let m = await timed(s, () => s.client.pushBlob('bench/push', a));
    record(mono, s, BLOB / 1e6 / m.secs);
    record(monoCpu, s, m.cpu / (BLOB / 1e9));
    const b = new GeneratedBlob(`chunked-${s.label}-${r}`, BLOB);
    await sourceDigest(b);
    m = await timed(s, () => s.client.pushBlobChunked('bench/push', b, CHUNK));
    record(chunked, s, BLOB / 1e6 / m.secs);
    record(chunkedCpu, s, m.cpu / (BLOB / 1e9));
  });
}

async function benchPull(servers: Server[]) {
  const first = metric('blob pull, first read of a blob', 'MB/s', { target: { op: '>=', ratio: BACKEND.targets.pull } });
  const one = metric('blob pull, 1 client', 'MB/s', { target: { op: '>=', ratio: BACKEND.targets.pull } });
  const many = metric(`blob pull, ${PULLERS} clients`, 'MB/s', { target: { op: '>=', ratio: BACKEND.targets.pull } });
  const cpu = metric('  server CPU, blob pull', 'CPU s/GB');
  const blob = new GeneratedBlob('pull', BLOB);
  for (const s of servers) await s.client.pushBlob('bench/pull', blob);
  // Every server's bytes are checked once; the timed pulls then use curl, which
  // costs the 2 cores little: a Node client hashing what it receives tops out
  // near 550 MB/s here and would hide the servers' difference.
  for (const s of servers) {
    const got = await s.client.pullBlob('bench/pull', blob.digest!);
    if (got.digest !== blob.digest) throw new Error(`${s.label}: pulled ${got.status} ${got.digest}, want ${blob.digest}`);
  }
  const pull = (s: Server, digest = blob.digest) => curlGet(`${s.url}/v2/bench/pull/blobs/${digest}`, BLOB);
  await interleaved(servers, async (s, r) => {
    // A blob never read before (what a cache, if any, has not seen), then the one blob again and again.
    // A single pull takes well under a second: several per round steady the medians.
    // One pull is timed by curl itself: starting and ending a curl process
    // takes ~12 ms here, a fifth of a 128 MiB pull, and would count as the server's.
    for (let k = 0; k < FIRST_READS_PER_ROUND; k++) {
      const fresh = new GeneratedBlob(`first-${s.label}-${r}-${k}`, BLOB);
      await s.client.pushBlob('bench/pull', fresh);
      record(first, s, BLOB / 1e6 / (await pull(s, fresh.digest)));
    }
    for (let k = 0; k < PULLS_PER_ROUND; k++) record(one, s, BLOB / 1e6 / (await pull(s)));
    // Parallel pulls by the clock: the processes start while others transfer.
    const m = await timed(s, () => Promise.all(Array.from({ length: PULLERS }, () => pull(s))));
    record(many, s, (PULLERS * BLOB) / 1e6 / m.secs);
    record(cpu, s, m.cpu / ((PULLERS * BLOB) / 1e9));
  });
}

/**
 * GET url with curl into /dev/null (following redirects); throws unless it got
 * 200 and `size` bytes. Returns curl's own time for it (connect to last byte), in seconds.
 */
async function curlGet(url: string, size: number): Promise<number> {
  const { stdout: out } = await mustRun('curl', ['-sS', '-L', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url]);
  const [status, bytes, secs] = out.split(' ');
  if (`${status} ${bytes}` !== `200 ${size}`) throw new Error(`GET ${url}: got "${status} ${bytes}" (status, bytes), want "200 ${size}"`);
  return Number(secs);
}

/** One small image (config + layer) pushed to `repo`; returns its manifest. */
async function pushImage(c: OciClient, repo: string): Promise<Buffer> {
  const config = bufferSource(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const layer = new GeneratedBlob(`layer-${repo}`, 4096);
  await c.pushBlob(repo, config);
  await c.pushBlob(repo, layer);
  return imageManifest({ mediaType: OCI_CONFIG, digest: config.digest, size: config.size }, [
    { mediaType: OCI_LAYER, digest: layer.digest!, size: layer.size },
  ]);
}

const UNIT_S: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60 };

/** wrk: C, multi-threaded, keep-alive; on 2 cores a Node load generator would take the server's CPU. */
async function wrk(url: string, seconds = SECONDS): Promise<{ rps: number; p99ms: number; non2xx: number }> {
  const args = ['-t', '2', '-c', String(CONNS), '-d', `${seconds}s`, '--latency', '-H', `Accept: ${MANIFEST_ACCEPT}`, url];
  const { stdout: out } = await mustRun('wrk', args);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(out);
  if (!rps || !p99) throw new Error(`cannot parse wrk output:\n${out}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  return { rps: Number(rps[1]), p99ms: Number(p99[1]) * UNIT_S[p99[2]] * 1e3, non2xx: non2xx ? Number(non2xx[1]) : 0 };
}

async function benchManifest(servers: Server[]) {
  const rps = metric(`manifest GET by tag, ${CONNS} conns`, 'req/s', { target: { op: '>=', ratio: 10 } });
  const p99 = metric(`manifest GET p99, ${CONNS} conns`, 'ms', { target: { op: '<=', ratio: 0.2 } });
  for (const s of servers) {
    const manifest = await pushImage(s.client, 'bench/manifest');
    await s.client.putManifest('bench/manifest', 'latest', manifest, OCI_MANIFEST);
    const got = await s.client.getManifest('bench/manifest', 'latest');
    if (got.status !== 200 || !got.body.equals(manifest)) throw new Error(`${s.label}: manifest GET ${got.status}`);
    // Unmeasured warm-up: the first second of load is when a JIT compiles the hot path.
    await wrk(`${s.url}/v2/bench/manifest/manifests/latest`, 2);
  }
  const cpu = metric('  server CPU per manifest GET', 'CPU us');
  await interleaved(servers, async (s) => {
    let r!: Awaited<ReturnType<typeof wrk>>;
    const m = await timed(s, async () => (r = await wrk(`${s.url}/v2/bench/manifest/manifests/latest`)));
    if (r.non2xx) throw new Error(`${s.label}: ${r.non2xx} manifest GETs failed under load`);
    record(rps, s, r.rps);
    record(p99, s, r.p99ms);
    record(cpu, s, (m.cpu / (r.rps * SECONDS)) * 1e6);
  });
}

/** Median seconds of `count` sequential GETs of one list page, checking its length. */
async function timePage(s: Server, target: string, count: number, want: (body: any) => boolean): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const { body } = await s.client.listPage(target);
    times.push(seconds(t0));
    if (!want(body)) throw new Error(`${s.label}: unexpected ${target}: ${JSON.stringify(body).slice(0, 300)}`);
  }
  return median(times);
}

async function benchCatalog(servers: Server[]) {
  const first = metric(`catalog first page (n=100 of ${REPOS})`, 'pages/s', { target: { op: '>=', ratio: 10 } });
  const last = metric(`catalog last page (n=100 of ${REPOS})`, 'pages/s', { target: { op: '>=', ratio: 10 } });
  const lastName = repoName(REPOS - 101);
  await interleaved(servers, async (s) => {
    record(first, s, 1 / (await timePage(s, '/v2/_catalog?n=100', LIST_REQS, (b) => b.repositories?.length === 100)));
    record(last, s, 1 / (await timePage(s, `/v2/_catalog?n=100&last=${lastName}`, LIST_REQS, (b) => b.repositories?.[0] === repoName(REPOS - 100))));
  });
}

async function benchWalk(servers: Server[]) {
  const walk = metric(`catalog full walk (n=100, Link)`, 'walks/s', { target: { op: '>=', ratio: 10 } });
  await interleaved(servers, async (s) => {
    const t0 = process.hrtime.bigint();
    const names = await s.client.catalog(100);
    record(walk, s, 1 / seconds(t0));
    if (names.filter((n) => n.startsWith('catalog/')).length !== REPOS) throw new Error(`${s.label}: catalog walk found ${names.length} names`);
  });
}

async function benchTags(servers: Server[]) {
  const list = metric(`tag list (${TAGS} tags)`, 'lists/s');
  await interleaved(servers, async (s) => {
    record(list, s, 1 / (await timePage(s, '/v2/bench/tags/tags/list', LIST_REQS, (b) => b.tags?.length === TAGS)));
  });
}

// ---- report ----

function table(servers: Server[]): string {
  const [a, b] = servers.map((s) => s.label);
  const rows = [['metric', a, b, `${a}/${b}`, 'target', '']];
  for (const m of metrics) {
    const va = median(m.samples.get(a) ?? [NaN]);
    const vb = median(m.samples.get(b) ?? [NaN]);
    const ratio = va / vb;
    let target = '';
    let ok = '';
    if (m.target) {
      target = `${m.target.op} ${m.target.ratio}x`;
      ok = (m.target.op === '>=' ? ratio >= m.target.ratio : ratio <= m.target.ratio) ? 'ok' : 'MISS';
    } else if (m.limit) {
      target = `${a} ${m.limit.op} ${m.limit.value} ${m.unit}`;
      ok = va <= m.limit.value ? 'ok' : 'MISS';
    }
    rows.push([`${m.name} (${m.unit})`, fmt(va), fmt(vb), `${ratio.toFixed(2)}x`, target, ok]);
  }
  return markdownTable(rows);
}

async function main() {
  const kinds = opt.targets!.split(',') as Kind[];
  if (kinds.length !== 2 || kinds.some((k) => k !== 'berth' && k !== 'distribution')) {
    usage('--targets takes two of berth,distribution (e.g. distribution,distribution to test the bench itself)');
  }
  const labels = kinds[0] === kinds[1] ? kinds.map((k, i) => `${k}#${i + 1}`) : kinds;
  const servers: (Server & { cleanup(): void })[] = [];
  const started = Date.now();
  try {
    for (let i = 0; i < 2; i++) servers.push(await startServer(kinds[i], labels[i]));
    // The fixtures' ~20,000 small files are still being written back: flush them first,
    // or the first pushes' fsyncs queue behind them.
    const flushed = process.hrtime.bigint();
    execFileSync('sync');
    log(`backend ${opt.backend}; ${servers.map((s) => `${s.label} ${s.url} pid ${s.pid}`).join('; ')}; sync ${seconds(flushed).toFixed(1)} s`);
    const phases: [string, (s: Server[]) => Promise<void>][] = [
      ['push', benchPush],
      ['pull', benchPull],
      ['manifest', benchManifest],
      ['catalog', benchCatalog],
      ['walk', benchWalk],
      ['tags', benchTags],
    ];
    for (const [name, run] of phases) {
      if (!ONLY.has(name)) continue;
      const t0 = process.hrtime.bigint();
      await run(servers);
      log(`${name} done in ${seconds(t0).toFixed(1)} s`);
    }
    const rss = metric('peak RSS (VmHWM)', 'MB', { limit: { op: '<=', value: 150 } });
    for (const s of servers) record(rss, s, (procMemMiB(s.pid, 'VmHWM') * MiB) / 1e6);
    const out = table(servers);
    const info = `${opt.backend} backend, ${ROUNDS} rounds (medians), blob ${BLOB / MiB} MiB, ${new Date().toISOString()}, total ${((Date.now() - started) / 1000).toFixed(0)} s`;
    console.log(`\n${info}\n\n${out}\n`);
    if (opt.json) {
      const samples = metrics.map((m) => ({ name: m.name, unit: m.unit, samples: Object.fromEntries(m.samples) }));
      fs.writeFileSync(opt.json, JSON.stringify({ info, samples }, null, 2));
    }
  } catch (err) {
    for (const s of servers) console.error(s.diagnose());
    throw err;
  } finally {
    for (const s of servers) {
      await s.stop();
      s.cleanup();
    }
    await BACKEND.close?.();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
