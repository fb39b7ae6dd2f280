// The requests of the growth curve: each costs the size of its answer, not of
// the store, or it shows here. Times are the client's (loopback, keep-alive:
// an upper bound of the server's time); storage operations per request come
// from the server's driver metrics, whatever else runs in the background
// included (berth reads its change feed once a second).
import { BIG_REPO, fixtureFacts, repoName, type FixtureShape } from '../../test/helpers/layout-fixture';
import { MANIFEST_ACCEPT } from '../../test/helpers/oci-client';
import type { Kind, Server } from './stores';

export interface Step {
  method: string;
  path: string;
  headers?: Record<string, string>;
}

export interface Workload {
  name: string;
  /** Which servers have the endpoint. */
  kinds: Kind[];
  /** Repeated requests per run (mutating ones use `budget` instead of --requests). */
  mutates?: boolean;
  /** Requests timed together as one sample (a page load), in order; `k` numbers the sample. */
  steps(ctx: { shape: FixtureShape; server: Server; round: number; k: number; victim: () => number }): Step[];
  /** Statuses that count as answered (anything else fails the run). */
  ok: Record<Kind, number[]>;
}

const deepName = (shape: FixtureShape) => repoName(shape, Math.floor(shape.repos * 0.9));
const both: Kind[] = ['berth', 'distribution'];
const okAll = { berth: [200], distribution: [200] };

export const WORKLOADS: Workload[] = [
  { name: 'catalog, first page (n=100)', kinds: both, ok: okAll, steps: () => [{ method: 'GET', path: '/v2/_catalog?n=100' }] },
  {
    name: 'catalog, page at 90% (n=100&last=)',
    kinds: both,
    ok: okAll,
    steps: ({ shape }) => [{ method: 'GET', path: `/v2/_catalog?n=100&last=${deepName(shape)}` }],
  },
  { name: `tag page (n=100) of ${BIG_REPO}`, kinds: both, ok: okAll, steps: () => [{ method: 'GET', path: `/v2/${BIG_REPO}/tags/list?n=100` }] },
  { name: `all tags of ${BIG_REPO} (5,000)`, kinds: both, ok: okAll, steps: () => [{ method: 'GET', path: `/v2/${BIG_REPO}/tags/list` }] },
  {
    name: 'manifest GET by tag',
    kinds: both,
    ok: okAll,
    steps: ({ shape }) => [{ method: 'GET', path: `/v2/${deepName(shape)}/manifests/latest`, headers: { Accept: MANIFEST_ACCEPT } }],
  },
  {
    name: 'referrers of an image',
    kinds: both,
    // distribution 2.8.2 has no referrers API.
    ok: { berth: [200], distribution: [404] },
    steps: ({ shape }) => {
      const s = fixtureFacts.referrerSubject(shape);
      return [{ method: 'GET', path: `/v2/${s.repo}/referrers/${s.digest}` }];
    },
  },
  {
    name: 'mount without from, shared base layer',
    kinds: both,
    mutates: true,
    // distribution 2.8.2 mounts only with `from`: it starts an upload (202).
    ok: { berth: [201], distribution: [202] },
    steps: ({ server, round, k }) => [{ method: 'POST', path: `/v2/growth-mount/${server.kind}-${round}-s${k}/blobs/uploads/?mount=${fixtureFacts.sharedLayer()}` }],
  },
  {
    name: 'mount without from, layer of one repository',
    kinds: both,
    mutates: true,
    ok: { berth: [201], distribution: [202] },
    steps: ({ shape, server, round, k }) => [
      { method: 'POST', path: `/v2/growth-mount/${server.kind}-${round}-u${k}/blobs/uploads/?mount=${fixtureFacts.uniqueLayer(shape, deepIndex(shape))}` },
    ],
  },
  {
    name: `delete by digest in ${BIG_REPO}`,
    kinds: both,
    mutates: true,
    ok: { berth: [202], distribution: [202] },
    steps: ({ shape, victim }) => [{ method: 'DELETE', path: `/v2/${BIG_REPO}/manifests/${fixtureFacts.victim(shape, victim()).digest}` }],
  },
  {
    name: '/berth/v1/repositories by name',
    kinds: ['berth'],
    ok: okAll,
    steps: () => [{ method: 'GET', path: '/berth/v1/repositories?sort=name&order=asc&limit=50' }],
  },
  {
    name: '/berth/v1/repositories by name, at 90%',
    kinds: ['berth'],
    ok: okAll,
    steps: ({ shape }) => [{ method: 'GET', path: `/berth/v1/repositories?sort=name&order=asc&limit=50&cursor=${encodeURIComponent(deepName(shape))}` }],
  },
  {
    name: '/berth/v1/repositories by size',
    kinds: ['berth'],
    ok: okAll,
    steps: () => [{ method: 'GET', path: '/berth/v1/repositories?sort=size&order=desc&limit=50' }],
  },
  {
    name: '/berth/v1/repositories by last push',
    kinds: ['berth'],
    ok: okAll,
    steps: () => [{ method: 'GET', path: '/berth/v1/repositories?sort=pushed&order=desc&limit=50' }],
  },
  {
    // One match: the whole table is scanned for the page and the total.
    name: '/berth/v1/repositories filtered (q=big)',
    kinds: ['berth'],
    ok: okAll,
    steps: () => [{ method: 'GET', path: '/berth/v1/repositories?q=big&limit=50' }],
  },
  {
    // What a browser asks for to show the first screen (its hashed assets come from its cache).
    name: 'UI repositories page (HTML + session + first page)',
    kinds: ['berth'],
    ok: okAll,
    steps: () => [
      { method: 'GET', path: '/' },
      { method: 'GET', path: '/berth/v1/session' },
      { method: 'GET', path: '/berth/v1/repositories?sort=name&order=asc&limit=50' },
    ],
  },
];

function deepIndex(shape: FixtureShape): number {
  return Math.floor(shape.repos * 0.7);
}

export interface RunSample {
  /** Milliseconds per sample, in the order taken. */
  ms: number[];
  /** Storage driver calls per sample (see the header). */
  opsPerSample: number;
  status: number;
}

/** `count` samples of a workload against a running server (after `warmup` untimed ones when it does not mutate). */
export async function runWorkload(
  w: Workload,
  server: Server,
  ctx: { shape: FixtureShape; round: number; victim: () => number },
  count: number,
  warmup: number,
): Promise<RunSample> {
  const one = async (k: number): Promise<{ ms: number; status: number }> => {
    const t0 = process.hrtime.bigint();
    let status = 0;
    for (const s of w.steps({ ...ctx, server, k })) {
      const r = await server.client.request(s.method, s.path, s.headers ?? {});
      status = r.status;
      if (!w.ok[server.kind].includes(r.status)) {
        throw new Error(`${server.kind}: ${s.method} ${s.path} -> ${r.status} ${r.body.toString().slice(0, 300)}`);
      }
    }
    return { ms: Number(process.hrtime.bigint() - t0) / 1e6, status };
  };
  if (!w.mutates) for (let k = 0; k < warmup; k++) await one(-1 - k);
  const ops0 = await server.storageOps();
  const ms: number[] = [];
  let status = 0;
  for (let k = 0; k < count; k++) {
    const r = await one(k);
    ms.push(r.ms);
    status = r.status;
  }
  const ops = (await server.storageOps()) - ops0;
  return { ms, opsPerSample: ops / count, status };
}
