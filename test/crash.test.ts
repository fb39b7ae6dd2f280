// Crash safety: several clients push blobs (monolithic and chunked), images and
// tags at once; the server is SIGKILLed mid-flight and restarted on the same
// store. Every acknowledged push must be intact, nothing corrupt may be served,
// and interrupted uploads must be invisible as blobs (and resumable when their
// session survived).
import t from 'tap';
import { startBerth, tempDir } from './helpers/berth';
import {
  GeneratedBlob,
  HttpError,
  OCI_CONFIG,
  OCI_LAYER,
  OCI_MANIFEST,
  OciClient,
  bufferSource,
  imageManifest,
  sha256,
  sourceDigest,
  type BlobSource,
} from './helpers/oci-client';

const MiB = 1 << 20;
const WORKERS = 6;

interface BlobPush {
  repo: string;
  src: BlobSource;
  chunked: boolean;
  acked: boolean;
  /** Last session and offset the registry accepted, for chunked pushes. */
  session?: { location: string; offset: number };
}

interface ManifestPush {
  repo: string;
  tag: string;
  body: Buffer;
  digest: string;
  acked: boolean;
}

t.test('SIGKILL during concurrent pushes loses nothing acknowledged and serves nothing corrupt', async (t) => {
  const root = tempDir('berth-crash-');
  const first = await startBerth({ root });
  t.teardown(() => first.kill());
  const blobs: BlobPush[] = [];
  const manifests: ManifestPush[] = [];
  let killed = false;
  let acks = 0;

  // Sizes vary per push; all content is derived from the seed, so it can be
  // regenerated for checking after the crash.
  const size = (w: number, i: number) => 256 * 1024 + (((w * 7919 + i * 104729) % 23) * MiB) / 4;

  const worker = async (w: number) => {
    const c = new OciClient(first.url, { maxSockets: 2 });
    try {
      for (let i = 0; !killed; i++) {
        const repo = i % 2 ? 'crash/shared' : `crash/w${w}`;
        const op = i % 3;
        if (i === 0 || op !== 2) {
          // The first push of every worker is the same layer at the same time.
          const src = new GeneratedBlob(i === 0 ? 'common' : `w${w}-${i}`, i === 0 ? 3 * MiB : size(w, i));
          const p: BlobPush = { repo, src, chunked: op === 1, acked: false };
          blobs.push(p);
          if (p.chunked) {
            await c.pushBlobChunked(repo, src, MiB / 4, { onProgress: (location, offset) => (p.session = { location, offset }) });
          } else {
            await sourceDigest(src);
            await c.pushBlob(repo, src);
          }
          p.acked = true;
        } else {
          const config = bufferSource(JSON.stringify({ architecture: 'amd64', os: 'linux', w, i }));
          const layer = new GeneratedBlob(`layer-w${w}-${i}`, MiB / 2);
          await sourceDigest(layer);
          const cp: BlobPush = { repo, src: config, chunked: false, acked: false };
          blobs.push(cp);
          await c.pushBlob(repo, config);
          cp.acked = true;
          const lp: BlobPush = { repo, src: layer, chunked: false, acked: false };
          blobs.push(lp);
          await c.pushBlob(repo, layer);
          lp.acked = true;
          const body = imageManifest({ mediaType: OCI_CONFIG, digest: config.digest, size: config.size }, [
            { mediaType: OCI_LAYER, digest: layer.digest!, size: layer.size },
          ]);
          const m: ManifestPush = { repo, tag: `w${w}-${i}`, body, digest: sha256(body), acked: false };
          manifests.push(m);
          await c.putManifest(repo, m.tag, body, OCI_MANIFEST);
          m.acked = true;
        }
        acks++;
      }
    } catch (err) {
      if (!killed) throw err;
    } finally {
      c.close();
    }
  };

  const running = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  const deadline = Date.now() + 30000;
  // Kill once enough is acknowledged and a chunked upload is half-way through.
  const midUpload = () => blobs.some((b) => !b.acked && b.session && b.session.offset > 0);
  while ((acks < 3 * WORKERS || !midUpload()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  killed = true;
  await first.kill();
  await running;
  const inflight = blobs.filter((b) => !b.acked).length + manifests.filter((m) => !m.acked).length;
  t.ok(acks >= 3 * WORKERS, `${acks} pushes acknowledged before the kill`);
  t.ok(inflight > 0, `${inflight} pushes were in flight at the kill`);

  const second = await startBerth({ root });
  t.teardown(() => second.stop());
  const c = new OciClient(second.url, { maxSockets: 4 });
  t.teardown(() => c.close());

  let visibleUnacked = 0;
  for (const b of blobs) {
    const want = await sourceDigest(b.src);
    const got = await c.pullBlob(b.repo, want);
    if (b.acked) {
      t.same(got, { status: 200, digest: want, size: b.src.size }, `acknowledged blob ${want} in ${b.repo} intact`);
    } else if (got.status === 200) {
      // Committed just before the kill, before the 201 reached us: fine if intact.
      visibleUnacked++;
      t.same(got, { status: 200, digest: want, size: b.src.size }, `unacknowledged blob ${want} served intact`);
    } else {
      t.equal(got.status, 404, `interrupted blob ${want} in ${b.repo} not served`);
    }
  }
  let tagged = 0;
  for (const m of manifests) {
    const byDigest = await c.getManifest(m.repo, m.digest);
    const byTag = await c.getManifest(m.repo, m.tag);
    if (m.acked) {
      t.equal(byTag.status, 200, `acknowledged tag ${m.repo}:${m.tag} resolves`);
      t.ok(byTag.body.equals(m.body), `tag ${m.tag} serves the pushed manifest`);
      t.ok(byDigest.status === 200 && byDigest.body.equals(m.body), `manifest ${m.digest} intact`);
    } else {
      t.ok(byDigest.status === 404 || byDigest.body.equals(m.body), `interrupted manifest ${m.digest}: absent or intact (${byDigest.status})`);
      t.ok(byTag.status === 404 || byTag.body.equals(m.body), `interrupted tag ${m.tag}: absent or intact (${byTag.status})`);
    }
    if (byTag.status === 200) tagged++;
  }

  // Whatever the registry lists must be whole: every tag's manifest matches its
  // digest and every blob it references is served and matches its digest.
  let listed = 0;
  for (const repo of await c.catalog()) {
    // A repository holding only blobs may have no tag list at all.
    const tags = await c.tags(repo).catch((err) => (err instanceof HttpError && err.status === 404 ? [] : Promise.reject(err)));
    for (const tag of tags) {
      const r = await c.getManifest(repo, tag);
      listed++;
      if (!t.equal(r.status, 200, `listed tag ${repo}:${tag} resolves`)) continue;
      t.equal(r.headers['docker-content-digest'], sha256(r.body), `${repo}:${tag} matches its digest`);
      const doc = JSON.parse(r.body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
      for (const d of [doc.config, ...doc.layers]) {
        const got = await c.pullBlob(repo, d.digest);
        t.ok(got.status === 200 && got.digest === d.digest, `${repo}:${tag} references intact blob ${d.digest}`);
      }
    }
  }
  t.equal(listed, tagged, 'the tag lists hold exactly the tags that resolve');

  // Interrupted chunked uploads whose session survived continue where the store says.
  let resumed = 0;
  for (const b of blobs.filter((b) => !b.acked && b.chunked && b.session)) {
    // The session's path, on the restarted server's address.
    const location = new URL(b.session!.location).pathname + new URL(b.session!.location).search;
    const offset = await c.uploadOffset(location);
    if (offset === null) continue;
    const r = await c.pushBlobChunked(b.repo, b.src, MiB / 4, { resume: { location, offset } });
    t.equal(r.digest, await sourceDigest(b.src), `upload resumed at ${offset} of ${b.src.size} completes`);
    t.same(await c.pullBlob(b.repo, r.digest), { status: 200, digest: r.digest, size: b.src.size }, 'resumed blob intact');
    resumed++;
  }
  t.comment(`${acks} acknowledged, ${inflight} in flight at the kill, ${visibleUnacked} of those committed anyway, ${resumed} uploads resumed`);
});
