// When each cached image was last pulled, for expiry. Pulls are recorded in
// memory and written to the store in batches (one object per replica per
// minute at most, never a write per pull) under _berth/proxy/pulls/; the
// expiry pass, under the GC lease, folds the batches into one summary
// (_berth/proxy/pulled) and removes them. Facts only ever move forward: a
// batch a replica writes while the pass runs is folded in next time.
import { isNotFound, type StorageDriver } from '../storage/driver';
import { paths } from '../storage/paths';
import { listOrEmpty } from '../storage/repositories';
import type { Logger } from '../server/log';

const BATCHES = `${paths.root}/_berth/proxy/pulls`;
const SUMMARY = `${paths.root}/_berth/proxy/pulled`;
const FLUSH_MS = 60_000;
/** Distinct images held before a batch is written early (memory stays bounded). */
const MAX_PENDING = 20_000;

/** `repo@digest` -> last pull, epoch ms. */
export type Pulls = Map<string, number>;

export const pullKey = (repo: string, digest: string) => `${repo}@${digest}`;

export class PullLog {
  private pending: Pulls = new Map();
  private seq = 0;
  private readonly timer: NodeJS.Timeout;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly driver: StorageDriver,
    private readonly holder: string,
    private readonly logger: Logger,
    flushMs = FLUSH_MS,
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs);
    this.timer.unref();
  }

  record(repo: string, digest: string): void {
    this.pending.set(pullKey(repo, digest), Date.now());
    if (this.pending.size >= MAX_PENDING) void this.flush();
  }

  /** Write what was recorded since the last batch (one object). */
  flush(): Promise<void> {
    if (!this.pending.size) return this.writing;
    const batch = this.pending;
    this.pending = new Map();
    const name = `${this.holder.replace(/[^A-Za-z0-9._-]/g, '_')}-${Date.now()}-${this.seq++}`;
    this.writing = this.writing.then(() =>
      this.driver.putContent(`${BATCHES}/${name}`, Buffer.from(JSON.stringify(Object.fromEntries(batch)))).catch((e) => {
        this.logger.warn('could not record pull times; expiry will see older ones', { error: String(e) });
        // Keep them for the next batch unless that would grow past the bound.
        for (const [k, v] of batch) if (this.pending.size < MAX_PENDING && !this.pending.has(k)) this.pending.set(k, v);
      }),
    );
    return this.writing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}

async function readJson(driver: StorageDriver, path: string): Promise<Record<string, number> | undefined> {
  try {
    return JSON.parse((await driver.getContent(path)).toString('utf8'));
  } catch (e) {
    if (isNotFound(e) || e instanceof SyntaxError) return undefined;
    throw e;
  }
}

/**
 * Fold every batch into the summary, keep only what `keep` accepts (images
 * still cached), remove the batches folded in; returns the summary. Run by
 * one process at a time (under the GC lease).
 */
export async function foldPulls(driver: StorageDriver, keep: (key: string) => boolean): Promise<Pulls> {
  const pulls: Pulls = new Map(Object.entries((await readJson(driver, SUMMARY)) ?? {}));
  const batches = await listOrEmpty(driver, BATCHES);
  for (const b of batches) {
    for (const [k, t] of Object.entries((await readJson(driver, `${BATCHES}/${b}`)) ?? {})) {
      if (typeof t === 'number' && t > (pulls.get(k) ?? 0)) pulls.set(k, t);
    }
  }
  for (const k of [...pulls.keys()]) if (!keep(k)) pulls.delete(k);
  await driver.putContent(SUMMARY, Buffer.from(JSON.stringify(Object.fromEntries(pulls))));
  for (const b of batches) {
    await driver.delete(`${BATCHES}/${b}`).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }
  return pulls;
}
