// The growth curve's stores and servers: a generated store per size (on the
// filesystem or in one Swift s3api bucket), and berth or distribution 2.8.2
// started on it with start-up timed to the millisecond.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { S3Driver } from '../../storage/drivers/s3';
import { startBerth } from '../../test/helpers/berth';
import { startDistribution } from '../../test/helpers/distribution';
import { growthShape, layoutFiles, writeLayoutToDirectory, writeLayoutToDriver, type FixtureShape } from '../../test/helpers/layout-fixture';
import { OciClient } from '../../test/helpers/oci-client';
import { freePort, procMemMiB, type Managed } from '../../test/helpers/process';
import { startS3, type S3Server } from '../../test/helpers/s3';

export type Kind = 'berth' | 'distribution';

const SNAPSHOT_KEY = 'docker/registry/v2/_berth/index/snapshot';

export interface Store {
  size: number;
  shape: FixtureShape;
  /** Storage settings for each server. */
  berthEnv: Record<string, string>;
  distributionYaml?: string;
  /** Local directory: the store itself (filesystem) or scratch space (S3). */
  root: string;
  /** How the store came to be: files written and seconds taken; undefined when reused. */
  generated?: { files: number; seconds: number };
  /** Victims of BIG_REPO already deleted by earlier runs over this store. */
  victimsUsed: number;
  saveVictims(used: number): void;
  /** Whether berth has written its snapshot of the repository table (so a start loads it instead of walking). */
  snapshotWritten(): Promise<boolean>;
  remove(): Promise<void>;
}

export interface StartTimes {
  /** Process start to the first /v2/ answer, seconds. */
  serving: number;
  /** To /readyz 200 (berth: the repository table is loaded). */
  ready: number;
  /** berth: to the markers complete and no figures left to compute (undefined if that took longer than allowed). */
  warm?: number;
  /** berth: what /readyz said last. */
  indexes?: Record<string, unknown>;
}

export interface Server {
  kind: Kind;
  url: string;
  pid: number;
  client: OciClient;
  times: StartTimes;
  /** Storage driver calls made so far (berth's driver metrics; distribution's registry_storage_action_seconds). */
  storageOps(): Promise<number>;
  rssMiB(): { rss: number; hwm: number };
  output(): string;
  stop(): Promise<void>;
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function log(msg: string): void {
  process.stderr.write(`[growth ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

interface StampFile {
  shape: FixtureShape;
  files: number;
  victimsUsed: number;
}

/**
 * A filesystem store of `size` repositories under `dir`: reused when a
 * complete one of the same shape is there (a stamp file says so), else
 * generated (and removed at the end unless `keep`).
 */
export async function filesystemStore(dir: string, size: number, keep: boolean, tagsPerRepo = 10): Promise<Store> {
  const shape = growthShape(size, { tags: size * tagsPerRepo });
  const root = path.join(dir, `growth-${size}`);
  const stampFile = path.join(dir, `growth-${size}.json`);
  let stamp: StampFile | undefined;
  try {
    stamp = JSON.parse(fs.readFileSync(stampFile, 'utf8')) as StampFile;
    if (JSON.stringify(stamp.shape) !== JSON.stringify(shape)) stamp = undefined;
  } catch {
    stamp = undefined;
  }
  let generated: Store['generated'];
  if (!stamp) {
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(stampFile, { force: true });
    log(`writing a store of ${size} repositories (${shape.tags} tags) under ${root}`);
    const t0 = process.hrtime.bigint();
    const files = await writeLayoutToDirectory(root, layoutFiles(shape));
    execFileSync('sync');
    generated = { files, seconds: seconds(t0) };
    log(`wrote ${files} files in ${generated.seconds.toFixed(0)} s`);
    stamp = { shape, files, victimsUsed: 0 };
    fs.writeFileSync(stampFile, JSON.stringify(stamp));
  } else {
    log(`reusing the store of ${size} repositories under ${root} (${stamp.victimsUsed} victims used)`);
  }
  const keepIt = keep || !generated;
  return {
    size,
    shape,
    root,
    generated,
    berthEnv: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root },
    victimsUsed: stamp.victimsUsed,
    saveVictims(used) {
      fs.writeFileSync(stampFile, JSON.stringify({ ...stamp, victimsUsed: used }));
    },
    snapshotWritten: async () => fs.existsSync(path.join(root, SNAPSHOT_KEY)),
    async remove() {
      if (keepIt) return;
      log(`removing ${root}`);
      fs.rmSync(root, { recursive: true, force: true });
      fs.rmSync(stampFile, { force: true });
    },
  };
}

/** One Swift s3api for the whole run; each size is a store under its own rootdirectory of the bucket. */
export class S3Stores {
  private s3?: Promise<S3Server>;

  constructor(
    private readonly scratchDir: string,
    private readonly concurrency: number,
  ) {}

  async store(size: number, tagsPerRepo = 10): Promise<Store> {
    const s3 = await (this.s3 ??= startS3());
    const shape = growthShape(size, { tags: size * tagsPerRepo });
    const rootdirectory = `/growth-${size}`;
    const root = fs.mkdtempSync(path.join(this.scratchDir, `growth-s3-${size}-`));
    const driver = new S3Driver(s3.options({ rootdirectory }));
    log(`writing a store of ${size} repositories (${shape.tags} tags) to s3://${s3.bucket}${rootdirectory}, ${this.concurrency} PUTs in flight`);
    const t0 = process.hrtime.bigint();
    let files: number;
    try {
      files = await writeLayoutToDriver(driver, layoutFiles(shape), this.concurrency);
    } finally {
      await driver.close();
    }
    const generated = { files, seconds: seconds(t0) };
    log(`wrote ${files} objects in ${generated.seconds.toFixed(0)} s (${(files / generated.seconds).toFixed(0)} PUT/s)`);
    let victimsUsed = 0;
    return {
      size,
      shape,
      root,
      generated,
      berthEnv: s3.env({ REGISTRY_STORAGE_S3_ROOTDIRECTORY: rootdirectory, REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' }),
      distributionYaml: s3.distributionStorage(rootdirectory),
      get victimsUsed() {
        return victimsUsed;
      },
      saveVictims(used) {
        victimsUsed = used;
      },
      async snapshotWritten() {
        const d = new S3Driver(s3.options({ rootdirectory }));
        try {
          return await d.stat(`/${SNAPSHOT_KEY}`).then(() => true, () => false);
        } finally {
          await d.close();
        }
      },
      async remove() {
        fs.rmSync(root, { recursive: true, force: true });
        // The objects go with the Swift store at close(): deleting a prefix of ~10^5 objects costs as much as writing them.
      },
    };
  }

  async close(): Promise<void> {
    if (this.s3) await (await this.s3).stop();
  }
}

async function metricSum(url: string, name: string): Promise<number> {
  const res = await fetch(url);
  const text = await res.text();
  let n = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{[^}]*\\} (\\d+(?:\\.\\d+)?(?:e\\+?\\d+)?)$`, 'gm'))) n += Number(m[1]);
  return n;
}

/** /readyz; a probe that times out (a server busy warming up) reads as not ready. */
async function readyz(url: string): Promise<{ status: number; body: Record<string, any> }> {
  try {
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, any> };
  } catch (e) {
    return { status: 0, body: { error: String(e) } };
  }
}

// A run that fails or is interrupted leaves no server behind.
const running = new Set<Managed>();
process.once('exit', () => {
  for (const m of running) m.proc.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

export interface StartOptions {
  /** Extra environment for berth (e.g. a short snapshot interval). */
  env?: Record<string, string>;
  /** Give up waiting for berth's indexes to be warm after this many seconds (it goes on serving). */
  warmTimeout: number;
  nodeArgs?: string[];
}

function wrap(kind: Kind, m: Managed, times: StartTimes, ops: () => Promise<number>): Server {
  const client = new OciClient(m.url, { maxSockets: 4 });
  running.add(m);
  return {
    kind,
    url: m.url,
    pid: m.proc.pid!,
    client,
    times,
    storageOps: ops,
    rssMiB: () => ({ rss: procMemMiB(m.proc.pid!, 'VmRSS'), hwm: procMemMiB(m.proc.pid!, 'VmHWM') }),
    output: () => m.output(),
    async stop() {
      client.close();
      await m.stop(120_000);
      running.delete(m);
    },
  };
}

export async function startServer(kind: Kind, store: Store, opts: StartOptions): Promise<Server> {
  const t0 = process.hrtime.bigint();
  if (kind === 'distribution') {
    const metricsPort = await freePort();
    const m = await startDistribution({ root: store.root, storageYaml: store.distributionYaml, metricsPort, pollMs: 5 });
    const serving = seconds(t0);
    return wrap(kind, m, { serving, ready: serving }, () => metricSum(`http://127.0.0.1:${metricsPort}/metrics`, 'registry_storage_action_seconds_count'));
  }
  const m = await startBerth({
    root: store.root,
    pollMs: 5,
    readyTimeoutMs: 120_000,
    nodeArgs: opts.nodeArgs,
    env: { ...store.berthEnv, REGISTRY_LOG_ACCESSLOG_DISABLED: 'true', ...opts.env },
  });
  running.add(m);
  const times: StartTimes = { serving: seconds(t0), ready: NaN };
  let said = Date.now();
  for (;;) {
    const r = await readyz(m.url);
    if (r.status === 200 && Number.isNaN(times.ready)) times.ready = seconds(t0);
    times.indexes = r.body.indexes;
    if (r.status === 200 && r.body.indexes?.markers === 'complete' && r.body.indexes?.summarizing === 0) {
      times.warm = seconds(t0);
      break;
    }
    if (seconds(t0) > opts.warmTimeout) break;
    if (Date.now() - said > 30_000) {
      said = Date.now();
      log(`berth warming up for ${seconds(t0).toFixed(0)} s: ${JSON.stringify(r.body)}`);
    }
    await sleep(Number.isNaN(times.ready) ? 5 : 50);
  }
  return wrap(kind, m, times, () => metricSum(`${m.url}/metrics`, 'berth_storage_operation_duration_seconds_count'));
}

/** Wait until berth has written its snapshot (so the next start loads it instead of walking the store). */
export async function waitForSnapshot(store: Store, timeoutSec: number): Promise<boolean> {
  const deadline = Date.now() + timeoutSec * 1000;
  while (Date.now() < deadline) {
    if (await store.snapshotWritten()) return true;
    await sleep(1000);
  }
  return false;
}
