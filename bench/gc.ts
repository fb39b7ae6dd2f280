// GC benchmark: a filesystem store with 10,000 manifests and 50,000 blobs
// (100 repositories; 30% of manifests untagged by overwritten tags), then
//   1. `berth gc --dry-run` (mark only) and the real `berth gc --delete-untagged`
//      time, per phase;
//   2. manifest GET latency (p50/p99) from a running berth without GC and while
//      the collection runs against the same store.
// Usage: node dist/bench/gc.js [--repos 100] [--manifests-per-repo 100] [--clients 16] [--seconds 8]
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseDigest } from '../storage/digest';
import type { GcReport } from '../storage/gc';
import { paths } from '../storage/paths';
import { CLI, startBerth, tempDir } from '../test/helpers/berth';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const REPOS = arg('--repos', 100);
const PER_REPO = arg('--manifests-per-repo', 100);
const CLIENTS = arg('--clients', 16);
const SECONDS = arg('--seconds', 8);
const UNTAGGED_SHARE = 0.3;
const LAYERS_PER_REPO = (PER_REPO * 3); // with one config and one manifest each: 5 blobs per manifest
const LAYERS_PER_MANIFEST = 4;

const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

/**
 * Write the store straight into distribution's layout (bench set-up only: plain
 * writes without fsync, which a registry would never do, to build 100k+ files quickly).
 */
function generate(root: string): { tags: { repo: string; tag: string }[]; files: number } {
  let files = 0;
  const put = (key: string, data: Buffer | string) => {
    const file = path.join(root, key);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, data);
    files++;
  };
  const blob = (data: Buffer) => {
    const d = sha(data);
    put(paths.blobData(parseDigest(d)), data);
    return { digest: d, size: data.length };
  };
  const tags: { repo: string; tag: string }[] = [];
  for (let r = 0; r < REPOS; r++) {
    const repo = `bench/team${r % 10}/app${r}`;
    const layers = Array.from({ length: LAYERS_PER_REPO }, () => blob(crypto.randomBytes(64 + (crypto.randomInt(192)))));
    for (const l of layers) put(paths.layerLink(repo, parseDigest(l.digest)), l.digest);
    const tagged = Math.round(PER_REPO * (1 - UNTAGGED_SHARE));
    for (let m = 0; m < PER_REPO; m++) {
      const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n: crypto.randomUUID() })));
      put(paths.layerLink(repo, parseDigest(config.digest)), config.digest);
      const picks = Array.from({ length: LAYERS_PER_MANIFEST }, (_, k) => layers[(m * 3 + k) % layers.length]);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: picks.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
        }),
      );
      const md = blob(manifest);
      put(paths.revisionLink(repo, parseDigest(md.digest)), md.digest);
      // The first `tagged` manifests keep a tag; the rest lost theirs to an overwrite.
      if (m < tagged) {
        const tag = `v${m}`;
        put(paths.tagCurrentLink(repo, tag), md.digest);
        put(paths.tagIndexLink(repo, tag, parseDigest(md.digest)), md.digest);
        tags.push({ repo, tag });
      }
    }
  }
  return { tags, files };
}

function runGc(root: string, args: string[]): Promise<GcReport> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, 'gc', '--json', '--min-age', '0s', ...args], {
      env: { ...process.env, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`gc exited ${code}`))));
  });
}

/** Manifest GETs from CLIENTS loops until stop() resolves; latencies in ms. */
function load(url: string, tags: { repo: string; tag: string }[]) {
  const lat: number[] = [];
  let errors = 0;
  let running = true;
  const loops = Array.from({ length: CLIENTS }, async () => {
    while (running) {
      const t = tags[crypto.randomInt(tags.length)];
      const started = process.hrtime.bigint();
      const res = await fetch(`${url}/v2/${t.repo}/manifests/${t.tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      await res.arrayBuffer();
      if (res.status !== 200) errors++;
      lat.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return { lat, errors };
    },
  };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(name: string, r: { lat: number[]; errors: number }, ms: number): string {
  const s = [...r.lat].sort((a, b) => a - b);
  return `${name.padEnd(28)} ${String(s.length).padStart(7)} GETs  ${(s.length / (ms / 1000)).toFixed(0).padStart(6)} req/s  p50 ${pct(s, 50).toFixed(2)} ms  p99 ${pct(s, 99).toFixed(2)} ms  errors ${r.errors}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const root = tempDir('berth-bench-gc-');
  try {
    let t = Date.now();
    const { tags, files } = generate(root);
    console.log(`generated ${REPOS * PER_REPO} manifests, ${REPOS * (PER_REPO * 2 + LAYERS_PER_REPO)} blobs (${files} files) in ${((Date.now() - t) / 1000).toFixed(1)}s`);

    t = Date.now();
    const dry = await runGc(root, ['--dry-run', '--delete-untagged']);
    console.log(`gc --dry-run (mark only):    ${((Date.now() - t) / 1000).toFixed(2)}s wall; ${dry.removed.manifests.length} manifests, ${dry.removed.blobs.length} blobs would go`);
    console.log(`  phases: ${dry.phases.map((p) => `${p.name} ${(p.ms / 1000).toFixed(2)}s`).join(', ')}`);

    const berth = await startBerth({ root, env: { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' } });
    try {
      // Warm up: every tag once (manifest cache), then the JIT.
      let next = 0;
      await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          for (let i = next++; i < tags.length; i = next++) await (await fetch(`${berth.url}/v2/${tags[i].repo}/manifests/${tags[i].tag}`)).arrayBuffer();
        }),
      );
      const warm = load(berth.url, tags);
      await sleep(2000);
      await warm.stop();

      // Interleaved windows (the machine is shared): quiet, GC that sweeps, quiet, GC with nothing to sweep.
      const quiet = async () => {
        const started = Date.now();
        const l = load(berth.url, tags);
        await sleep(SECONDS * 1000);
        return { r: await l.stop(), ms: Date.now() - started };
      };
      const underGc = async () => {
        const started = Date.now();
        const l = load(berth.url, tags);
        const report = await runGc(root, ['--delete-untagged']);
        return { report, r: await l.stop(), ms: Date.now() - started };
      };
      const q1 = await quiet();
      const g1 = await underGc();
      const q2 = await quiet();
      const g2 = await underGc();
      const { report } = g1;
      console.log(
        `gc --delete-untagged:        ${(report.totalMs / 1000).toFixed(2)}s under load; removed ${report.manifestsDeleted} manifests, ${report.layerLinksDeleted} links, ${report.blobsDeleted} blobs (${report.bytesFreed} bytes)`,
      );
      console.log(`  phases: ${report.phases.map((p) => `${p.name} ${(p.ms / 1000).toFixed(2)}s`).join(', ')}`);
      console.log(`gc again (nothing to sweep): ${(g2.report.totalMs / 1000).toFixed(2)}s under load`);
      console.log(`  phases: ${g2.report.phases.map((p) => `${p.name} ${(p.ms / 1000).toFixed(2)}s`).join(', ')}`);

      console.log(`\nmanifest GET by tag, ${CLIENTS} clients, ${tags.length} tags`);
      console.log(summary('without GC (1)', q1.r, q1.ms));
      console.log(summary('while GC sweeps', g1.r, g1.ms));
      console.log(summary('without GC (2)', q2.r, q2.ms));
      console.log(summary('while GC scans (no-op)', g2.r, g2.ms));
    } finally {
      await berth.stop();
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
