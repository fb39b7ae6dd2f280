// The mixed load: many clients at once pushing small images, pulling them
// back with digest checks, listing tags and walking the catalog, for several
// rounds on the same server process. Per round: requests/s, errors and RSS;
// per operation: p50 and p99. At the end every acknowledged manifest is read
// again: nothing acknowledged may be lost.
import crypto from 'node:crypto';
import { GeneratedBlob, OCI_MANIFEST, bufferSource, hashStream, imageManifest, OCI_CONFIG, OCI_LAYER, sha256 } from '../test/helpers/oci-client';
import { procMemMiB } from '../test/helpers/process';
import { MIXED_CLIENTS, MIXED_SECONDS, MiB, ROUNDS } from './options';
import { interleaved, log, metric, record, seconds, type Server } from './report';
import { percentile } from './stats';

const REPOS = 16;
const LAYER = 16 * 1024;
/** Operation mix, out of 100: pushes, pulls (manifest and layer, checked), tag lists, catalog walks. */
const MIX = { push: 20, pull: 50, tags: 20, catalog: 10 };

interface Image {
  repo: string;
  tag: string;
  digest: string;
  layer: string;
}

interface State {
  images: Image[];
  seq: number;
  /** Per round: latencies (s) per operation, errors per operation, requests. */
  rounds: { lat: Map<string, number[]>; errors: Map<string, number>; requests: number; secs: number; rssMax: number; rssEnd: number }[];
  firstErrors: string[];
}

const states = new Map<string, State>();
const MB = (mib: number) => (mib * MiB) / 1e6;

async function op(st: State, round: State['rounds'][number], name: string, fn: () => Promise<number>): Promise<void> {
  const t0 = process.hrtime.bigint();
  try {
    const n = await fn(); // not `+= await`: that would read the count before the wait
    round.requests += n;
    const l = round.lat.get(name) ?? [];
    l.push(seconds(t0));
    round.lat.set(name, l);
  } catch (e) {
    round.errors.set(name, (round.errors.get(name) ?? 0) + 1);
    if (st.firstErrors.length < 10) st.firstErrors.push(`${name}: ${(e as Error).message.slice(0, 300)}`);
  }
}

async function push(s: Server, st: State, round: State['rounds'][number], client: number): Promise<void> {
  const n = st.seq++;
  const repo = `mixed/app${n % REPOS}`;
  const tag = `c${client}-${n}`;
  const config = bufferSource(JSON.stringify({ architecture: 'amd64', os: 'linux', created: new Date().toISOString(), n }));
  const layer = new GeneratedBlob(`mixed-${s.label}-${n}-${crypto.randomUUID()}`, LAYER);
  const blob = async (b: typeof config | GeneratedBlob) => {
    await s.client.pushBlob(repo, b);
    return 2;
  };
  const before = round.errors.get('blob push') ?? 0;
  await op(st, round, 'blob push', () => blob(config));
  await op(st, round, 'blob push', () => blob(layer));
  if ((round.errors.get('blob push') ?? 0) !== before) return;
  const manifest = imageManifest({ mediaType: OCI_CONFIG, digest: config.digest, size: config.size }, [
    { mediaType: OCI_LAYER, digest: layer.digest!, size: LAYER },
  ]);
  await op(st, round, 'manifest PUT', async () => {
    const { digest } = await s.client.putManifest(repo, tag, manifest, OCI_MANIFEST);
    // Acknowledged (201): from now on it must stay readable.
    st.images.push({ repo, tag, digest, layer: layer.digest! });
    return 1;
  });
}

async function pull(s: Server, st: State, round: State['rounds'][number]): Promise<void> {
  const img = st.images[Math.floor(Math.random() * st.images.length)];
  await op(st, round, 'manifest GET', async () => {
    const r = await s.client.getManifest(img.repo, img.tag);
    if (r.status !== 200 || sha256(r.body) !== img.digest) throw new Error(`GET ${img.repo}:${img.tag}: ${r.status}, ${sha256(r.body)} want ${img.digest}`);
    return 1;
  });
  await op(st, round, 'blob GET', async () => {
    const res = await s.client.send('GET', `/v2/${img.repo}/blobs/${img.layer}`);
    const got = await hashStream(res);
    if (res.statusCode !== 200 || got.digest !== img.layer) throw new Error(`GET blob ${img.layer}: ${res.statusCode}, ${got.digest}`);
    return 1;
  });
}

async function client(s: Server, st: State, round: State['rounds'][number], k: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const x = Math.random() * 100;
    if (x < MIX.push || st.images.length === 0) await push(s, st, round, k);
    else if (x < MIX.push + MIX.pull) await pull(s, st, round);
    else if (x < MIX.push + MIX.pull + MIX.tags) {
      const repo = `mixed/app${Math.floor(Math.random() * REPOS)}`;
      await op(st, round, 'tag list', async () => {
        const r = await s.client.request('GET', `/v2/${repo}/tags/list`);
        // A repository no push has reached yet is unknown (404): that is an answer too.
        if (r.status !== 200 && r.status !== 404) throw new Error(`tag list ${repo}: ${r.status}`);
        return 1;
      });
    } else {
      await op(st, round, 'catalog walk', async () => {
        let pages = 0;
        let target: string | undefined = '/v2/_catalog?n=100';
        while (target) {
          target = (await s.client.listPage(target)).next;
          pages++;
        }
        return pages;
      });
    }
  }
}

async function mixedRound(s: Server, r: number): Promise<void> {
  const st = states.get(s.label) ?? { images: [], seq: 0, rounds: [], firstErrors: [] };
  states.set(s.label, st);
  const round = { lat: new Map<string, number[]>(), errors: new Map<string, number>(), requests: 0, secs: 0, rssMax: 0, rssEnd: 0 };
  st.rounds.push(round);
  const sample = () => (round.rssMax = Math.max(round.rssMax, MB(procMemMiB(s.pid, 'VmRSS'))));
  const timer = setInterval(sample, 500);
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + MIXED_SECONDS * 1000;
  await Promise.all(Array.from({ length: MIXED_CLIENTS }, (_, k) => client(s, st, round, k, deadline)));
  round.secs = seconds(t0);
  clearInterval(timer);
  sample();
  round.rssEnd = MB(procMemMiB(s.pid, 'VmRSS'));
  const errs = [...round.errors.values()].reduce((a, b) => a + b, 0);
  log(`mixed ${s.label} round ${r + 1}: ${(round.requests / round.secs).toFixed(0)} req/s, ${errs} errors, RSS max ${round.rssMax.toFixed(0)} end ${round.rssEnd.toFixed(0)} MB, ${st.images.length} images`);
}

/** Every acknowledged manifest, read again by tag: how many are missing or different. */
async function lost(s: Server, st: State): Promise<number> {
  let missing = 0;
  const it = st.images[Symbol.iterator]();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let x = it.next(); !x.done; x = it.next()) {
        const r = await s.client.getManifest(x.value.repo, x.value.tag);
        if (r.status !== 200 || sha256(r.body) !== x.value.digest) {
          missing++;
          if (st.firstErrors.length < 20) st.firstErrors.push(`lost ${x.value.repo}:${x.value.tag} (${r.status})`);
        }
      }
    }),
  );
  return missing;
}

const OPS = ['blob push', 'manifest PUT', 'manifest GET', 'blob GET', 'tag list', 'catalog walk'];

export async function benchMixed(servers: Server[]) {
  const rate = metric(`mixed load, ${MIXED_CLIENTS} clients`, 'req/s');
  const errors = metric('  mixed load errors, all rounds', 'count');
  const lostM = metric('  mixed load acknowledged manifests lost', 'count');
  const putP99 = metric('  mixed load manifest PUT p99', 'ms');
  const rssMax = metric('  mixed load RSS, highest', 'MB', { limit: { op: '<=', value: 150 } });
  const growth = metric('  mixed load RSS growth, end of round 2 to last', 'MB');
  await interleaved(servers, mixedRound, ROUNDS);
  for (const s of servers) {
    const st = states.get(s.label)!;
    const all = (f: (r: State['rounds'][number]) => number) => st.rounds.map(f);
    for (const v of all((r) => r.requests / r.secs)) record(rate, s, v);
    record(errors, s, all((r) => [...r.errors.values()].reduce((a, b) => a + b, 0)).reduce((a, b) => a + b, 0));
    record(lostM, s, await lost(s, st));
    for (const r of st.rounds) record(putP99, s, percentile(r.lat.get('manifest PUT') ?? [], 99) * 1e3);
    record(rssMax, s, Math.max(...all((r) => r.rssMax)));
    if (st.rounds.length >= 2) record(growth, s, st.rounds[st.rounds.length - 1].rssEnd - st.rounds[1].rssEnd);
    console.log(`\nmixed load, ${s.label}: ${st.images.length} images acknowledged`);
    console.log(`| round | req/s | errors | RSS max (MB) | RSS end (MB) | ${OPS.map((o) => `${o} p50/p99 (ms)`).join(' | ')} |`);
    console.log(`|---:|---:|---:|---:|---:|${OPS.map(() => '---:').join('|')}|`);
    st.rounds.forEach((r, i) => {
      const errs = [...r.errors.values()].reduce((a, b) => a + b, 0);
      const lat = OPS.map((o) => {
        const l = r.lat.get(o) ?? [];
        return `${(percentile(l, 50) * 1e3).toFixed(1)} / ${(percentile(l, 99) * 1e3).toFixed(1)}`;
      });
      console.log(`| ${i + 1} | ${(r.requests / r.secs).toFixed(0)} | ${errs} | ${r.rssMax.toFixed(0)} | ${r.rssEnd.toFixed(0)} | ${lat.join(' | ')} |`);
    });
    if (st.firstErrors.length) console.log(`first errors:\n  ${st.firstErrors.join('\n  ')}`);
  }
}
