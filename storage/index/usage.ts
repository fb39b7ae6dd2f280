// Store-wide usage: bytes stored, bytes shared between repositories, the most
// shared layers. Computed from one walk of the blobs and of the blob-users
// markers by the index lease holder (every berth.usage.cachettl) and kept in
// the store, so every replica answers from it without walking anything.
import { blobSizes } from '../du';
import { isNotFound, type StorageDriver } from '../driver';
import { forEachLimit } from '../pool';
import { listOrEmpty } from '../repositories';
import type { IndexOptions } from './options';
import type { RepoTable } from './table';
import { indexKeys, parseUser } from './keys';

/** How many of the most shared layers are kept, and how many repositories of each. */
const TOP_LAYERS = 50;
const REPOS_PER_LAYER = 200;

export interface SharedLayer {
  digest: string;
  size: number;
  /** Repositories using it (all of them, though `repos` lists at most REPOS_PER_LAYER). */
  repositories: number;
  images: number;
  /** Images using it, by repository. */
  repos: Record<string, number>;
}

export interface StoreUsage {
  computedAt: string;
  ms: number;
  /** Every blob in the store, each counted once. */
  storedBytes: number;
  blobs: number;
  /** Blobs two or more repositories use. */
  sharedBytes: number;
  /** Blobs no repository uses: what GC will free. */
  unusedBytes: number;
  sharedLayers: SharedLayer[];
}

export async function computeUsage(driver: StorageDriver, concurrency = 8): Promise<StoreUsage> {
  const started = Date.now();
  const sizes = await blobSizes(driver);
  const repoCount = new Map<string, number>();
  const top: SharedLayer[] = [];
  // Blob directories are grouped by their first two hex digits: one listing per group at a time keeps memory at a group's size.
  for (const alg of await listOrEmpty(driver, indexKeys.blobsRoot)) {
    const groups = await listOrEmpty(driver, `${indexKeys.blobsRoot}/${alg}`);
    await forEachLimit(groups, concurrency, async (g) => {
      const users = new Map<string, { repos: Map<string, number> }>();
      try {
        await driver.walk(`${indexKeys.blobsRoot}/${alg}/${g}`, (info) => {
          if (info.isDir) return;
          const rest = info.path.slice(`${indexKeys.blobsRoot}/${alg}/${g}/`.length).split('/');
          if (rest.length !== 2) return;
          const digest = `${alg}:${rest[0]}`;
          const u = parseUser(rest[1]);
          let entry = users.get(digest);
          if (!entry) users.set(digest, (entry = { repos: new Map() }));
          entry.repos.set(u.repo, (entry.repos.get(u.repo) ?? 0) + (u.image ? 1 : 0));
        });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      for (const [digest, { repos }] of users) {
        const size = sizes.get(digest);
        if (size === undefined) continue; // marked before its blob arrived, or after GC took it
        repoCount.set(digest, repos.size);
        if (repos.size < 2) continue;
        const images = [...repos.values()].reduce((a, b) => a + b, 0);
        const byRepo = Object.fromEntries([...repos].sort((a, b) => b[1] - a[1]).slice(0, REPOS_PER_LAYER));
        top.push({ digest, size, repositories: repos.size, images, repos: byRepo });
        top.sort((a, b) => b.repositories - a.repositories || b.size - a.size);
        if (top.length > TOP_LAYERS) top.length = TOP_LAYERS;
      }
    });
  }
  let storedBytes = 0;
  let sharedBytes = 0;
  let unusedBytes = 0;
  for (const [digest, size] of sizes) {
    storedBytes += size;
    const n = repoCount.get(digest) ?? 0;
    if (n >= 2) sharedBytes += size;
    else if (n === 0) unusedBytes += size;
  }
  return { computedAt: new Date().toISOString(), ms: Date.now() - started, storedBytes, blobs: sizes.size, sharedBytes, unusedBytes, sharedLayers: top };
}

export async function saveUsage(driver: StorageDriver, u: StoreUsage): Promise<void> {
  await driver.putContent(indexKeys.usage, Buffer.from(JSON.stringify(u)));
}

export async function loadUsage(driver: StorageDriver): Promise<StoreUsage | undefined> {
  try {
    return JSON.parse((await driver.getContent(indexKeys.usage)).toString('utf8')) as StoreUsage;
  } catch (e) {
    if (isNotFound(e) || e instanceof SyntaxError) return undefined;
    throw e;
  }
}

/**
 * Usage as one replica answers it: what the lease holder last stored (re-read
 * every 30 s at most), or computed here when the store has none yet.
 */
export class UsageCache {
  /** Usage as last read from the store (or computed), and when. */
  private read?: { at: number; usage: Promise<StoreUsage> };
  private recomputing?: Promise<StoreUsage>;

  constructor(
    private readonly driver: StorageDriver,
    private readonly table: RepoTable,
    private readonly opts: Pick<IndexOptions, 'usageMs' | 'readOnly' | 'onError'>,
  ) {}

  async get(): Promise<StoreUsage> {
    const now = Date.now();
    if (!this.read || now - this.read.at >= Math.min(30_000, this.opts.usageMs)) {
      const usage = (async () => (await loadUsage(this.driver)) ?? (await this.recompute()))();
      this.read = { at: now, usage };
      usage.catch(() => (this.read = undefined));
    }
    const u = await this.read.usage;
    // Stale since the last change, and cheap to redo compared with how stale: redo it
    // in the background (a small store's figures follow pushes within seconds;
    // a large one's walk runs at most a twentieth of the time).
    const computedAt = Date.parse(u.computedAt);
    if (this.table.lastChange > computedAt && now - computedAt > 20 * Math.max(u.ms, 50)) void this.recompute().catch((e) => this.opts.onError?.('usage', e));
    return u;
  }

  /** The lease holder's duty: recompute what is older than usageMs. */
  async refreshIfDue(): Promise<void> {
    const usage = await loadUsage(this.driver);
    if (!usage || Date.now() - Date.parse(usage.computedAt) >= this.opts.usageMs) await this.recompute();
  }

  /** One computation at a time in this process. */
  private recompute(): Promise<StoreUsage> {
    this.recomputing ??= (async () => {
      try {
        const u = await computeUsage(this.driver);
        if (!this.opts.readOnly) await saveUsage(this.driver, u);
        this.read = { at: Date.now(), usage: Promise.resolve(u) };
        return u;
      } finally {
        this.recomputing = undefined;
      }
    })();
    return this.recomputing;
  }
}
