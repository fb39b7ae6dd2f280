// Blob workloads: single pushes (monolithic and chunked), pulls (a first
// read by curl, then sustained keep-alive GETs from 1 and N clients) and
// many clients pushing into one repository at once.
import crypto from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { mustRun } from '../test/helpers/clients';
import { GeneratedBlob, sourceDigest } from '../test/helpers/oci-client';
import { BLOB, CHUNK, MiB, PULLERS, PULL_SECONDS, PUSHERS, PUSH_BLOB, SECONDS } from './options';
import { interleaved, metric, record, timed, type Server } from './report';
import { BACKEND } from './servers';

// Server CPU per GB is steadier than MB/s on a loaded machine, and tells
// waiting (I/O, scheduling) apart from work.
export async function benchPush(servers: Server[]) {
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

/**
 * `clients` keep-alive connections GET `url` again and again for `secs`,
 * draining bodies without hashing them (each server's bytes were checked
 * once before). Returns bytes received per second, counted until the last
 * GET begun before the deadline has ended.
 */
async function sustainedGets(url: string, size: number, clients: number, secs: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + secs * 1000;
  let bytes = 0;
  const get = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.get(url, { agent }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200 || n !== size) reject(new Error(`GET ${url}: ${res.statusCode}, ${n} bytes, want 200 and ${size}`));
          bytes += n;
          resolve();
        });
      });
      req.on('error', reject);
    });
  try {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (Date.now() < deadline) await get();
      }),
    );
  } finally {
    agent.destroy();
  }
  return bytes / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9);
}

export async function benchPull(servers: Server[]) {
  const first = metric('blob pull, first read of a blob (curl)', 'MB/s', { target: { op: '>=', ratio: BACKEND.targets.pull } });
  const one = metric(`blob pull, 1 client, ${PULL_SECONDS} s`, 'MB/s', { target: { op: '>=', ratio: BACKEND.targets.pull } });
  const many = metric(`blob pull, ${PULLERS} clients, ${PULL_SECONDS} s`, 'MB/s', { target: { op: '>=', ratio: BACKEND.targets.pull } });
  const cpu = metric(`  server CPU, blob pull, ${PULLERS} clients`, 'CPU s/GB');
  const blob = new GeneratedBlob('pull', BLOB);
  for (const s of servers) await s.client.pushBlob('bench/pull', blob);
  for (const s of servers) {
    const got = await s.client.pullBlob('bench/pull', blob.digest!);
    if (got.digest !== blob.digest) throw new Error(`${s.label}: pulled ${got.status} ${got.digest}, want ${blob.digest}`);
  }
  const url = (s: Server, digest = blob.digest) => `${s.url}/v2/bench/pull/blobs/${digest}`;
  await interleaved(servers, async (s, r) => {
    // A blob never read before (what a cache, if any, has not seen), timed by
    // curl itself: its process start would count as the server's otherwise.
    const fresh = new GeneratedBlob(`first-${s.label}-${r}`, BLOB);
    await s.client.pushBlob('bench/pull', fresh);
    record(first, s, BLOB / 1e6 / (await curlGet(url(s, fresh.digest), BLOB)));
    record(one, s, await sustainedGets(url(s), BLOB, 1, PULL_SECONDS));
    let rate = 0;
    const m = await timed(s, async () => (rate = await sustainedGets(url(s), BLOB, PULLERS, PULL_SECONDS)));
    record(many, s, rate);
    record(cpu, s, m.cpu / ((rate * m.secs) / 1e3));
  });
}

/**
 * GET url with curl into /dev/null; throws unless it got 200 and `size`
 * bytes. Returns curl's own time for it (connect to last byte), in seconds.
 */
async function curlGet(url: string, size: number): Promise<number> {
  const { stdout: out } = await mustRun('curl', ['-sS', '-L', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url]);
  const [status, bytes, secs] = out.split(' ');
  if (`${status} ${bytes}` !== `200 ${size}`) throw new Error(`GET ${url}: got "${status} ${bytes}" (status, bytes), want "200 ${size}"`);
  return Number(secs);
}

/**
 * Fresh blobs of `size` bytes whose digests cost the client nothing: one
 * random body shared by all but the last 64 bytes, which are unique. The
 * SHA-256 state after the shared part is computed once and copied per blob,
 * so the server hashes every byte and the client almost none.
 */
function freshBlobs(size: number) {
  const head = crypto.randomBytes(size - 64);
  const state = crypto.createHash('sha256').update(head);
  let n = 0;
  return () => {
    const tail = Buffer.alloc(64);
    tail.write(`${process.pid}-${n++}-${crypto.randomUUID()}`);
    return { digest: 'sha256:' + state.copy().update(tail).digest('hex'), body: () => Readable.from([head, tail]) };
  };
}

export async function benchConcurrentPush(servers: Server[]) {
  const label = `concurrent push, ${PUSHERS} clients x ${PUSH_BLOB / MiB} MiB, ${SECONDS} s`;
  const rate = metric(label, 'MB/s', { target: { op: '>=', ratio: 1.5 } });
  const cpu = metric('  server CPU, concurrent push', 'CPU s/GB');
  const next = freshBlobs(PUSH_BLOB);
  await interleaved(servers, async (s) => {
    const deadline = Date.now() + SECONDS * 1000;
    let pushed = 0;
    const m = await timed(s, () =>
      Promise.all(
        Array.from({ length: PUSHERS }, async () => {
          while (Date.now() < deadline) {
            const blob = next();
            const loc = new URL(await s.client.startUpload('bench/cpush'));
            loc.searchParams.set('digest', blob.digest);
            const r = await s.client.request('PUT', loc.toString(), { 'Content-Type': 'application/octet-stream', 'Content-Length': PUSH_BLOB }, blob.body());
            if (r.status !== 201) throw new Error(`${s.label}: PUT blob ${r.status} ${r.body.toString().slice(0, 300)}`);
            pushed++;
          }
        }),
      ),
    );
    record(rate, s, (pushed * PUSH_BLOB) / 1e6 / m.secs);
    record(cpu, s, m.cpu / ((pushed * PUSH_BLOB) / 1e9));
  });
}
