// `npm run bench -- growth`: request times, storage operations per request,
// start-up and memory of berth and distribution 2.8.2 over generated stores
// of growing size (bench/README.md, "Growth curve").
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { growthReport, type Results } from './report';
import { filesystemStore, log, S3Stores, startServer, waitForSnapshot, type Kind, type Store } from './stores';
import { runWorkload, WORKLOADS } from './workloads';
import { procCpuSeconds } from '../../test/helpers/process';

const { values: opt } = parseArgs({
  options: {
    backend: { type: 'string', default: 'filesystem' },
    sizes: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    requests: { type: 'string', default: '40' },
    mutations: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '3' },
    'idle-seconds': { type: 'string', default: '61' },
    dir: { type: 'string', default: os.tmpdir() },
    keep: { type: 'boolean', default: false },
    'warm-timeout': { type: 'string', default: '14400' },
    'no-first-start': { type: 'boolean', default: false },
    targets: { type: 'string', default: 'berth,distribution' },
    'put-concurrency': { type: 'string', default: '32' },
    'tags-per-repo': { type: 'string', default: '10' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
    json: { type: 'string' },
  },
});

const num = (v: string | undefined, name: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number`);
  return n;
};
const backend = opt.backend!;
if (backend !== 'filesystem' && backend !== 's3') throw new Error('--backend is filesystem or s3');
const SIZES = (opt.sizes ?? (backend === 's3' ? '1000,10000' : '1000,10000,100000')).split(',').map((s) => num(s, 'sizes'));
const ROUNDS = num(opt.rounds, 'rounds');
const REQUESTS = num(opt.requests, 'requests');
const MUTATIONS = num(opt.mutations, 'mutations');
const WARMUP = num(opt.warmup, 'warmup');
const IDLE = num(opt['idle-seconds'], 'idle-seconds');
const TAGS_PER_REPO = num(opt['tags-per-repo'], 'tags-per-repo');
const KINDS = opt.targets!.split(',') as Kind[];
const ONLY = opt.only ? new Set(opt.only.split(',').map(Number)) : undefined;
const workloads = WORKLOADS.filter((_, i) => !ONLY || ONLY.has(i));

const results: Results = { backend, sizes: SIZES, startedAt: new Date().toISOString(), load: [], stores: {}, runs: [] };
const loadNow = () => os.loadavg()[0];

async function measureSize(store: Store): Promise<void> {
  const size = store.size;
  results.stores[size] = { generated: store.generated, shape: store.shape };
  const berthNode = opt['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${opt['cpu-prof']}`] : undefined;
  const warmTimeout = num(opt['warm-timeout'], 'warm-timeout');
  if (KINDS.includes('berth') && !opt['no-first-start']) {
    // The store as distribution left it: berth walks it, then derives its markers.
    // A short snapshot interval, so the starts after this one load the table.
    log(`${size}: first start of berth over the store`);
    const s = await startServer('berth', store, { env: { REGISTRY_BERTH_INDEX_SNAPSHOTINTERVAL: '5s' }, warmTimeout, nodeArgs: berthNode });
    results.stores[size].firstStart = { ...s.times, rss: s.rssMiB() };
    log(`${size}: first start ${JSON.stringify(s.times)}`);
    if (!(await waitForSnapshot(store, 600))) log(`${size}: no snapshot written within 10 min`);
    await s.stop();
  }
  let victim = store.victimsUsed;
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? [...KINDS].reverse() : KINDS;
    for (const kind of order) {
      results.load.push(loadNow());
      const server = await startServer(kind, store, { warmTimeout, nodeArgs: berthNode });
      try {
        const run: Results['runs'][0] = { size, kind, round, times: server.times, rss: { rss: 0, hwm: 0 }, workloads: {} };
        for (const w of workloads) {
          if (!w.kinds.includes(kind)) continue;
          const count = w.mutates ? MUTATIONS : REQUESTS;
          const next = () => {
            if (victim >= store.shape.victims) throw new Error(`no victims left in the store (used ${victim}): a fresh store is needed`);
            return victim++;
          };
          run.workloads[w.name] = await runWorkload(w, server, { shape: store.shape, round, victim: next }, count, WARMUP);
        }
        run.rss = server.rssMiB();
        if (IDLE) {
          // What the server does on its own (berth: the change feed every second, the store's listing every minute).
          const cpu0 = procCpuSeconds(server.pid);
          await new Promise((r) => setTimeout(r, IDLE * 1000));
          run.idleCpu = (procCpuSeconds(server.pid) - cpu0) / IDLE;
        }
        results.runs.push(run);
        log(`${size} ${kind} round ${round + 1}: start ${server.times.serving.toFixed(2)} s, RSS ${run.rss.rss.toFixed(0)} MiB, idle CPU ${((run.idleCpu ?? NaN) * 100).toFixed(1)} %, load ${loadNow().toFixed(1)}`);
      } catch (e) {
        console.error(server.output().slice(-4000));
        throw e;
      } finally {
        store.saveVictims(victim);
        await server.stop();
      }
    }
  }
}

async function main() {
  const s3 = backend === 's3' ? new S3Stores(opt.dir!, num(opt['put-concurrency'], 'put-concurrency')) : undefined;
  try {
    for (const size of SIZES) {
      const store = s3 ? await s3.store(size, TAGS_PER_REPO) : await filesystemStore(opt.dir!, size, opt.keep!, TAGS_PER_REPO);
      try {
        await measureSize(store);
      } finally {
        await store.remove();
      }
      if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(results, null, 1));
    }
  } finally {
    await s3?.close();
  }
  results.finishedAt = new Date().toISOString();
  if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(results, null, 1));
  console.log(growthReport(results, workloads));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
