// Online GC under fire: pushers and mounters over real HTTP against a berth
// process while `berth gc --min-age 0s` processes run back to back (half of
// them with --delete-untagged). Tags are overwritten and images pushed by
// digest all the time, so every run has garbage to sweep that shares layers
// with what is being pushed. Afterwards every acknowledged image that is still
// tagged pulls back byte for byte and `berth verify` finds nothing wrong.
// Bounded: a fixed number of iterations per worker and a time limit.
// Parameterised by the store so it runs on the filesystem (gc-stress.test.ts)
// and on S3 (gc-stress-s3.test.ts).
import type { Test } from 'tap';
import type { GcReport } from '../../storage/gc';
import { startBerth, type BerthOptions } from './berth';
import { runCli } from './cli';
import { OCI_MANIFEST } from './oci-client';
import { mountBlob, pushBlob, pushManifest, imageManifest, randomBlob, sha256, verifyPull, type Blob, type Image } from './registry-client';

const WORKERS = 3;
const REPOS = ['stress/one', 'stress/two', 'stress/three'];

export interface StressStore {
  /** How berth serves the store (a filesystem root, or S3 in env). */
  berth: BerthOptions;
  /** How `berth gc` and `berth verify` find it: runCli's root and env. */
  cliRoot?: string;
  cliEnv?: Record<string, string>;
  /** Pushes per worker, and the time after which workers and collector stop. */
  iterations: number;
  timeLimitMs: number;
  /** Acknowledged pushes the run needs to count (a push refused three times is not acknowledged). */
  minAcked: number;
}

export async function gcStress(t: Test, store: StressStore): Promise<void> {
  const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, store.cliRoot, { ...store.cliEnv, ...env });
  const berth = await startBerth({ ...store.berth, env: { REGISTRY_BERTH_LINKCACHETTL: '1s', ...store.berth.env } });
  t.teardown(() => berth.stop());
  const url = berth.url;
  // Base layers shared by everything: they keep becoming unreferenced in one
  // repository while another pushes or mounts them.
  const bases: Blob[] = Array.from({ length: 6 }, () => randomBlob(48 * 1024));
  // The time limit ends the run once enough pushes are acknowledged to check;
  // on a slow or loaded store the run goes on for them, up to four times as long.
  const deadline = Date.now() + store.timeLimitMs;
  const hardDeadline = Date.now() + 4 * store.timeLimitMs;
  let stop = false;
  const running = () => !stop && (Date.now() < deadline || (stats.acked < store.minAcked && Date.now() < hardDeadline));

  /** Latest acknowledged image per (repo, tag) and images under tags never overwritten. */
  const current = new Map<string, Image>();
  const stats = { acked: 0, failed: 0, repushed: 0, mounted: 0, uploaded: 0 };

  const pushOne = async (w: number, i: number): Promise<void> => {
    const repo = REPOS[(w + i) % REPOS.length];
    const layers = [bases[(w + i) % bases.length], bases[(w * 2 + i + 1) % bases.length], randomBlob(16 * 1024)];
    const config = randomBlob(200);
    const manifest = imageManifest(config, layers);
    const digest = sha256(manifest);
    // Two overwritten tags per worker, a kept tag now and then, and untagged pushes.
    const tag = i % 5 === 4 ? `keep-${w}-${i}` : i % 7 === 6 ? undefined : `w${w}-${i % 2}`;
    // With --min-age 0s a collection between the blobs and the manifest takes
    // the blobs and the manifest is refused; like a client, push them again
    // (the slower the store, the more often this happens).
    for (let attempt = 1; ; attempt++) {
      for (const b of [config, ...layers]) {
        // Shared layers: mount from another repository when one links them, else upload.
        const from = REPOS[(w + i + 1) % REPOS.length];
        if (bases.includes(b) && (await mountBlob(url, repo, b.digest, from))) stats.mounted++;
        else {
          await pushBlob(url, repo, b);
          stats.uploaded++;
        }
      }
      try {
        await pushManifest(url, repo, tag ?? digest, manifest, OCI_MANIFEST);
        break;
      } catch (e) {
        if (attempt === 3 || !/MANIFEST_BLOB_UNKNOWN/.test((e as Error).message)) throw e;
        stats.repushed++;
      }
    }
    stats.acked++;
    if (tag) current.set(`${repo}:${tag}`, { repo, tag, digest, mediaType: OCI_MANIFEST, manifest, blobs: [config, ...layers] });
  };

  const worker = async (w: number) => {
    for (let i = 0; i < store.iterations && running(); i++) {
      try {
        await pushOne(w, i);
      } catch (e) {
        // Refused three times (never acknowledged): allowed, but counted.
        stats.failed++;
        t.comment(`push refused (not acknowledged): ${(e as Error).message.slice(0, 160)}`);
      }
    }
  };

  const gcRuns: GcReport[] = [];
  const collector = async () => {
    for (let n = 0; running(); n++) {
      const args = ['gc', '--min-age', '0s', '--json'];
      if (n % 2) args.push('--delete-untagged');
      const r = await cli(args, { REGISTRY_BERTH_GC_LEASETTL: '30s' });
      if (r.code !== 0) {
        t.fail(`gc exited ${r.code}: ${r.stderr}`);
        return;
      }
      gcRuns.push(JSON.parse(r.stdout));
    }
  };

  const pushers = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  const gc = collector();
  await pushers;
  stop = true;
  await gc;

  const swept = gcRuns.reduce((n, r) => n + r.blobsDeleted + r.manifestsDeleted + r.layerLinksDeleted, 0);
  t.comment(`pushes acknowledged ${stats.acked}, refused ${stats.failed}, pushed again after a refusal ${stats.repushed}, layers mounted ${stats.mounted}, uploaded ${stats.uploaded}`);
  t.comment(`gc runs ${gcRuns.length}, items swept ${swept}, rescued by the final re-check ${gcRuns.reduce((n, r) => n + r.rescued, 0)}`);
  t.ok(gcRuns.length >= 3, 'several collections overlapped the pushes');
  t.ok(swept > 0, 'the collections did delete garbage');
  t.ok(stats.acked >= store.minAcked, `enough pushes were acknowledged to check (${stats.acked} of ${stats.acked + stats.failed})`);

  // Collections that finish after the pushes must not lose anything either.
  const last = await cli(['gc', '--min-age', '0s', '--delete-untagged', '--json']);
  t.equal(last.code, 0, 'a final collection succeeds');
  if (last.code !== 0) t.comment(last.stderr);

  const problems: string[] = [];
  for (const img of current.values()) problems.push(...(await verifyPull(url, img)));
  t.same(problems, [], `all ${current.size} tagged acknowledged images pull back byte for byte`);

  const verify = await cli(['verify']);
  t.equal(verify.code, 0, `berth verify finds nothing wrong:\n${verify.stdout}`);
}
