// Small-response workloads: manifest GETs under wrk, catalog pages and walks,
// tag lists from several clients at once.
import { mustRun } from '../test/helpers/clients';
import { procCpuSeconds } from '../test/helpers/process';
import { MANIFEST_ACCEPT, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, GeneratedBlob, OciClient, bufferSource, imageManifest } from '../test/helpers/oci-client';
import { CONNS, LIST_REQS, LIST_SECONDS, REPOS, SECONDS, TAGS, TAG_CLIENTS } from './options';
import { interleaved, metric, record, seconds, timed, type Server } from './report';
import { median, percentile } from './stats';
import { repoName } from './servers';

/** One small image (config + layer) pushed to `repo`; returns its manifest. */
export async function pushImage(c: OciClient, repo: string, seed = `layer-${repo}`): Promise<Buffer> {
  const config = bufferSource(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const layer = new GeneratedBlob(seed, 4096);
  await c.pushBlob(repo, config);
  await c.pushBlob(repo, layer);
  return imageManifest({ mediaType: OCI_CONFIG, digest: config.digest, size: config.size }, [
    { mediaType: OCI_LAYER, digest: layer.digest!, size: layer.size },
  ]);
}

const UNIT_S: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60 };

/** wrk: C, event-driven, keep-alive; on 2 cores a Node load generator would take the server's CPU. One thread, as in issue #16. */
async function wrk(url: string, secs = SECONDS): Promise<{ rps: number; p99ms: number; non2xx: number }> {
  const args = ['-t', '1', '-c', String(CONNS), '-d', `${secs}s`, '--latency', '-H', `Accept: ${MANIFEST_ACCEPT}`, url];
  const { stdout: out } = await mustRun('wrk', args);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(out);
  if (!rps || !p99) throw new Error(`cannot parse wrk output:\n${out}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  return { rps: Number(rps[1]), p99ms: Number(p99[1]) * UNIT_S[p99[2]] * 1e3, non2xx: non2xx ? Number(non2xx[1]) : 0 };
}

export async function benchManifest(servers: Server[]) {
  const rps = metric(`manifest GET by tag, ${CONNS} conns`, 'req/s', { target: { op: '>=', ratio: 12 } });
  const p99 = metric(`manifest GET p99, ${CONNS} conns`, 'ms', { target: { op: '<=', ratio: 0.1 } });
  const cpu = metric('  server CPU per manifest GET', 'CPU us');
  for (const s of servers) {
    const manifest = await pushImage(s.client, 'bench/manifest');
    await s.client.putManifest('bench/manifest', 'latest', manifest, OCI_MANIFEST);
    const got = await s.client.getManifest('bench/manifest', 'latest');
    if (got.status !== 200 || !got.body.equals(manifest)) throw new Error(`${s.label}: manifest GET ${got.status}`);
    // Unmeasured warm-up: the first second of load is when a JIT compiles the hot path.
    await wrk(`${s.url}/v2/bench/manifest/manifests/latest`, 2);
  }
  await interleaved(servers, async (s) => {
    let r!: Awaited<ReturnType<typeof wrk>>;
    const m = await timed(s, async () => (r = await wrk(`${s.url}/v2/bench/manifest/manifests/latest`)));
    if (r.non2xx) throw new Error(`${s.label}: ${r.non2xx} manifest GETs failed under load`);
    record(rps, s, r.rps);
    record(p99, s, r.p99ms);
    record(cpu, s, (m.cpu / (r.rps * SECONDS)) * 1e6);
  });
}

/** Median seconds of `count` sequential GETs of one list page, checking its content. */
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

export async function benchCatalog(servers: Server[]) {
  const first = metric(`catalog first page (n=100 of ${REPOS})`, 'pages/s', { target: { op: '>=', ratio: 10 } });
  const last = metric(`catalog last page (n=100 of ${REPOS})`, 'pages/s', { target: { op: '>=', ratio: 10 } });
  const lastName = repoName(REPOS - 101);
  await interleaved(servers, async (s) => {
    record(first, s, 1 / (await timePage(s, '/v2/_catalog?n=100', LIST_REQS, (b) => b.repositories?.length === 100)));
    record(last, s, 1 / (await timePage(s, `/v2/_catalog?n=100&last=${lastName}`, LIST_REQS, (b) => b.repositories?.[0] === repoName(REPOS - 100))));
  });
}

export async function benchWalk(servers: Server[]) {
  const walk = metric(`catalog full walk (n=100, Link)`, 'walks/s', { target: { op: '>=', ratio: 10 } });
  await interleaved(servers, async (s) => {
    const t0 = process.hrtime.bigint();
    const names = await s.client.catalog(100);
    record(walk, s, 1 / seconds(t0));
    if (names.filter((n) => n.startsWith('catalog/')).length !== REPOS) throw new Error(`${s.label}: catalog walk found ${names.length} names`);
  });
}

export async function benchTags(servers: Server[]) {
  const rps = metric(`tag list (${TAGS} tags, ${TAG_CLIENTS} clients)`, 'lists/s', { target: { op: '>=', ratio: 2 } });
  const p50 = metric(`tag list p50 (${TAG_CLIENTS} clients)`, 'ms', { target: { op: '<=', ratio: 0.5 } });
  const cpu = metric('  server CPU per tag list', 'CPU ms');
  const target = '/v2/bench/tags/tags/list';
  await interleaved(servers, async (s) => {
    // The content is checked once; the timed lists then compare lengths, so the client does not parse JSON.
    const check = await s.client.request('GET', target);
    const listed = JSON.parse(check.body.toString()).tags?.length;
    if (check.status !== 200 || listed !== TAGS) throw new Error(`${s.label}: tag list ${check.status} with ${listed} tags, want ${TAGS}`);
    const size = check.body.length;
    const times: number[] = [];
    const deadline = Date.now() + LIST_SECONDS * 1000;
    const t0 = process.hrtime.bigint();
    const cpu0 = procCpuSeconds(s.pid);
    await Promise.all(
      Array.from({ length: TAG_CLIENTS }, async () => {
        while (Date.now() < deadline) {
          const t = process.hrtime.bigint();
          const r = await s.client.request('GET', target);
          times.push(seconds(t));
          if (r.status !== 200 || r.body.length !== size) throw new Error(`${s.label}: tag list ${r.status}, ${r.body.length} bytes`);
        }
      }),
    );
    record(cpu, s, ((procCpuSeconds(s.pid) - cpu0) / times.length) * 1e3);
    record(rps, s, times.length / seconds(t0));
    record(p50, s, percentile(times, 50) * 1e3);
  });
}
