// The indexes behind the catalog, mounts without `from`, deletes by digest and
// the admin API (storage/INDEX.md). The content store calls the hooks below
// around its writes; queries read the repository table (in memory) and the
// markers in the store. Replicas on one store keep their tables current from
// the change feed; one of them (the index lease holder) writes snapshots,
// prunes the feed and rebuilds the markers of a store that lacks them.
import type { Digest } from '../digest';
import { parseDigest } from '../digest';
import { isNotFound, type StorageDriver } from '../driver';
import { Lease, newHolderId } from '../lease';
import { paths } from '../paths';
import { isRepository, repositoryNames } from '../repositories';
import { ChangeFeed, type ChangeEvent } from './feed';
import { indexKeys } from './keys';
import { defaultIndexOptions, type IndexOptions } from './options';
import { rebuildIndexes, references } from './rebuild';
import { loadSnapshot, saveSnapshot } from './snapshot';
import { UsageCache, type StoreUsage } from './usage';
import { summarize, type SummaryDeps } from './summary';
import { Summaries } from './summaries';
import { RepoTable, type RepoEntry } from './table';
import { TagFacts } from './tags';
import { BlobUsers } from './users';

export type { IndexOptions } from './options';

export type IndexState = 'cold' | 'loading' | 'ready';

/** What a garbage collection removed from one repository. */
export interface SweptRepository {
  repo: string;
  /** [tag, digest it pointed at] */
  tags: [string, string][];
  revisions: string[];
  layers: string[];
}

const LEASE_TTL_MS = 3 * 60_000;

export class StoreIndex {
  readonly table = new RepoTable();
  readonly users: BlobUsers;
  readonly tags: TagFacts;
  private readonly feed: ChangeFeed;
  private readonly opts: IndexOptions;
  private loadState: IndexState = 'cold';
  /** The markers (blob users, tag markers) hold everything the layout does. */
  private markersComplete = false;
  private readonly summaries: Summaries;
  private timers: NodeJS.Timeout[] = [];
  private lease?: Lease;
  private lastSnapshot = 0;
  private stopped = false;
  private reconciling = false;
  private readonly storeUsage: UsageCache;
  /** A round of the lease holder's work is under way (a rebuild can outlast many ticks). */
  private leading = false;

  constructor(
    private readonly driver: StorageDriver,
    private readonly deps: Omit<SummaryDeps, 'users' | 'pushedAt'>,
    opts: Partial<IndexOptions> = {},
  ) {
    this.opts = { ...defaultIndexOptions, ...opts };
    this.users = new BlobUsers(driver);
    this.tags = new TagFacts(driver);
    this.feed = new ChangeFeed(driver);
    const pushedAt = async (r: string, t: string, d: string) => (await this.tags.lastPush(r, t, d)).at;
    this.storeUsage = new UsageCache(driver, this.table, this.opts);
    this.summaries = new Summaries(this.table, (repo, lastPush) => summarize({ ...deps, users: this.users, pushedAt }, repo, lastPush), this.opts.onError);
  }

  /** 'ready' once the table holds every repository (figures may still be filling in). */
  get state(): IndexState {
    return this.loadState;
  }

  /** Whether blob users and tag markers can be trusted to be complete (else callers scan the layout). */
  get complete(): boolean {
    return this.markersComplete;
  }

  status(): { state: IndexState; repositories: number; summarizing: number; markers: 'complete' | 'rebuilding' } {
    return { state: this.loadState, repositories: this.table.size, summarizing: this.summaries.pending, markers: this.markersComplete ? 'complete' : 'rebuilding' };
  }

  /**
   * For a one-shot command (`berth ls`): load the table from the snapshot and
   * the feed, or a walk, without keeping it current or maintaining the store.
   */
  async open(): Promise<void> {
    this.loadState = 'loading';
    await this.load(false);
  }

  /** Until every repository's figures are computed (after open()); progress as (computed, total). */
  async summarized(onProgress?: (done: number, total: number) => void): Promise<void> {
    while (this.summaries.pending) {
      onProgress?.(this.table.size - this.summaries.pending, this.table.size);
      await new Promise((r) => setTimeout(r, 200));
    }
    onProgress?.(this.table.size, this.table.size);
  }

  /** Load the table (snapshot + feed, or a walk of the store) in the background and keep it current. */
  start(): Promise<void> {
    this.loadState = 'loading';
    this.summaries.serving = true;
    const loading = this.load(true).catch((e) => {
      this.opts.onError?.('index load', e);
      this.loadState = 'cold';
    });
    const poll = setInterval(() => void this.poll(), this.opts.pollMs);
    const lead = setInterval(() => void this.leaderDuties(), Math.min(60_000, this.opts.snapshotMs, this.opts.usageMs));
    const reconcile = setInterval(() => void this.reconcile(), this.opts.reconcileMs);
    for (const timer of [poll, lead, reconcile]) timer.unref();
    this.timers.push(poll, lead, reconcile);
    return loading;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.summaries.stopped = true;
    for (const t of this.timers) clearInterval(t);
    // The lease holder leaves a current snapshot, so the next start reads little of the feed.
    if (this.lease && this.loadState === 'ready' && !this.opts.readOnly && (await this.lease.held().catch(() => false))) {
      // Figures still being recomputed are saved as unknown: the next start recomputes them.
      const entries = [...this.table.entries()].map((e) => (this.summaries.isPending(e.name) ? { ...e, summarizedAt: 0 } : e));
      await saveSnapshot(this.driver, entries, this.feed.position).catch((e) => this.opts.onError?.('index snapshot', e));
    }
    await this.lease?.release().catch(() => undefined);
  }

  private async load(maintain: boolean): Promise<void> {
    const state = await this.readState();
    const snap = await loadSnapshot(this.driver);
    // A snapshot is usable while the feed still holds everything written since it
    // (entries are pruned after the retention; a minute's margin for clocks).
    if (snap && Date.now() - snap.position < this.opts.feedRetentionMs - 60_000) {
      this.table.load(snap.entries);
      for (const e of snap.entries) if (!e.summarizedAt) this.summaries.touch(e.name);
      this.feed.reset(snap.position);
      this.lastSnapshot = snap.writtenAt;
      this.loadState = 'ready';
      this.opts.onInfo?.('index loaded from snapshot', { repositories: snap.entries.length, age: Date.now() - snap.writtenAt });
      await this.poll();
    } else {
      await this.walk(state);
    }
    this.markersComplete = state;
    if (!state && maintain) void this.leaderDuties();
  }

  /**
   * Every repository from the layout, figures to be computed: now when the
   * markers are complete, else once they are (figures computed before would
   * count shared bytes as unique, and be computed again).
   */
  private async walk(markersComplete: boolean): Promise<void> {
    const started = Date.now();
    this.feed.reset(started);
    const names = await repositoryNames(this.driver);
    this.table.load(names.map((name) => ({ name, tags: 0, images: 0, lastPush: 0, logicalBytes: 0, uniqueBytes: 0, summarizedAt: 0 })));
    this.loadState = 'ready';
    if (markersComplete) for (const n of names) this.summaries.touch(n);
    this.opts.onInfo?.('index loaded from the store', { repositories: names.length, ms: Date.now() - started });
  }

  /**
   * Repositories another program created or removed (distribution serving the
   * same store) announce nothing: compare the table with the store's listing.
   */
  private async reconcile(): Promise<void> {
    if (this.loadState !== 'ready' || this.stopped || this.reconciling) return;
    this.reconciling = true;
    try {
      const names = await repositoryNames(this.driver);
      const present = new Set(names);
      for (const n of names) if (!this.table.has(n)) this.adopt(n);
      for (const e of [...this.table.entries()]) {
        // Created since the listing began, or still there after all: keep.
        if (!present.has(e.name) && !(await this.driver.list(paths.repository(e.name)).then(isRepository, () => false))) this.table.remove(e.name);
      }
    } catch (e) {
      this.opts.onError?.('index reconcile', e);
    } finally {
      this.reconciling = false;
    }
  }

  private async readState(): Promise<boolean> {
    try {
      await this.driver.getContent(indexKeys.state);
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  // ---- keeping the table current ----------------------------------------------------

  private async poll(): Promise<void> {
    if (this.loadState !== 'ready' || this.stopped) return;
    try {
      for (const e of await this.feed.poll()) this.apply(e);
    } catch (e) {
      this.opts.onError?.('index feed poll', e);
    }
  }

  private apply(e: ChangeEvent): void {
    // Before the table is loaded there is nothing to update: the load reads the store as it is.
    if (this.loadState !== 'ready') return;
    if (e.op === 'repo-delete') {
      this.table.remove(e.repo);
      return;
    }
    if (e.op === 'create' || e.op === 'manifest') this.table.add(e.repo);
    if (e.op === 'manifest' && e.tag) {
      const entry = this.table.get(e.repo);
      if (entry && e.at > entry.lastPush) this.table.update(e.repo, { lastPush: e.at });
    }
    if (this.table.has(e.repo)) this.summaries.touch(e.repo);
  }

  /** A repository the table lacks though the store holds it (written by another program): add it now. */
  adopt(repo: string): RepoEntry {
    const e = this.table.add(repo);
    this.summaries.touch(repo);
    return e;
  }

  /** Apply locally and tell other replicas. */
  private async publish(events: ChangeEvent[]): Promise<void> {
    const applied = this.loadState === 'ready';
    for (const e of events) this.apply(e);
    await this.feed.append(events, applied);
  }

  // ---- hooks the content store calls around its writes -----------------------------------

  /** Before a layer link is written. */
  beforeLink(repo: string, d: Digest): Promise<void> {
    return this.users.mark(d, repo);
  }

  /** After a layer link was written: a new repository is announced. */
  async linked(repo: string): Promise<void> {
    if (!this.table.has(repo)) await this.publish([{ repo, op: 'create', at: Date.now() }]);
  }

  /** Before a manifest's revision link: it and what it references are marked as used by it. */
  async beforeManifest(repo: string, d: Digest, references: Digest[]): Promise<void> {
    await Promise.all([this.users.mark(d, repo), ...references.map((b) => this.users.mark(b, repo, [d.value]))]);
  }

  /** Before a tag moves to d. */
  beforeTag(repo: string, tag: string, d: Digest): Promise<void> {
    return this.tags.markTag(repo, tag, d);
  }

  /** After a manifest (and its tag, if any) was stored. */
  async manifestStored(repo: string, d: Digest, references: Digest[], t?: { tag: string; previous?: string; by?: string }): Promise<void> {
    const at = Date.now();
    await Promise.all([
      t && this.tags.recordPush(repo, t.tag, { digest: d.value, at, by: t.by }),
      t?.previous && t.previous !== d.value && this.tags.unmarkTag(repo, t.tag, parseDigest(t.previous)),
      this.publish([{ repo, op: 'manifest', digest: d.value, at, ...(t && { tag: t.tag, by: t.by }) }]),
    ]);
    this.refreshSharers(repo, references);
  }

  async tagDeleted(repo: string, tag: string, d: Digest): Promise<void> {
    await this.tags.unmarkTag(repo, tag, d);
    await this.publish([{ repo, op: 'tag-delete', tag, digest: d.value, at: Date.now() }]);
  }

  async manifestDeleted(repo: string, d: Digest, references: Digest[], tags: string[]): Promise<void> {
    await Promise.all(references.map((b) => this.users.unmark(b, repo, d.value)));
    await this.users.unmark(d, repo);
    await Promise.all(tags.map((t) => this.tags.unmarkTag(repo, t, d)));
    await this.publish([{ repo, op: 'manifest-delete', digest: d.value, at: Date.now() }]);
    this.refreshSharers(repo, references);
  }

  blobUnlinked(repo: string, d: Digest): Promise<void> {
    return this.users.unmark(d, repo);
  }

  /** After a whole repository was deleted: `blobs` it linked, `images` with what they referenced. */
  async repositoryDeleted(repo: string, blobs: Digest[], images: { digest: Digest; references: Digest[] }[]): Promise<void> {
    const all: Digest[] = [...blobs];
    for (const i of images) {
      await Promise.all(i.references.map((b) => this.users.unmark(b, repo, i.digest.value)));
      all.push(...i.references);
    }
    await Promise.all(blobs.map((b) => this.users.unmark(b, repo)));
    await this.publish([{ repo, op: 'repo-delete', at: Date.now() }]);
    this.refreshSharers(repo, all);
  }

  /**
   * After a garbage collection removed tags, manifests and layer links
   * (storage/gc.ts writes the layout directly): the markers that described
   * them go, and every replica recomputes the repositories' figures. Called
   * before the blob sweep, while the removed manifests' content is still there.
   */
  async swept(repos: SweptRepository[]): Promise<void> {
    const events: ChangeEvent[] = [];
    const blobs: Digest[] = [];
    for (const r of repos) {
      await Promise.all(r.tags.map(([tag, digest]) => this.tags.unmarkTag(r.repo, tag, parseDigest(digest))));
      for (const digest of r.revisions) {
        const d = parseDigest(digest);
        const refs = await this.deps.describe(digest).then((m) => (m ? references(m) : []));
        await Promise.all([this.users.unmark(d, r.repo), ...refs.map((b) => this.users.unmark(b, r.repo, digest))]);
        blobs.push(...refs);
      }
      await Promise.all(r.layers.map((digest) => this.users.unmark(parseDigest(digest), r.repo)));
      events.push({ repo: r.repo, op: 'refresh', at: Date.now() });
    }
    await this.publish(events);
    this.refreshSharers('', blobs);
  }

  /**
   * A repository that now is (or is no longer) the only other user of one of
   * these blobs has new unique bytes: have every replica recompute it. In the
   * background: the request that changed sharing does not wait for it.
   */
  private refreshSharers(repo: string, blobs: Digest[]): void {
    void (async () => {
      const lone = new Set<string>();
      const seen = new Set<string>();
      for (const b of blobs) {
        if (seen.has(b.value)) continue;
        seen.add(b.value);
        const others = await this.users.others(b, repo, 2);
        if (others.length === 1) lone.add(others[0]);
      }
      if (lone.size) await this.publish([...lone].map((r) => ({ repo: r, op: 'refresh' as const, at: Date.now() })));
    })().catch((e) => this.opts.onError?.('sharing refresh', e));
  }

  /** Store-wide usage, as the lease holder last computed it. */
  usage(): Promise<StoreUsage> {
    return this.storeUsage.get();
  }

  // ---- the lease holder's work ----------------------------------------------------------

  /** Derive the markers of a store that has none (distribution wrote it), holding the lease throughout. */
  private async rebuild(lease: Lease): Promise<void> {
    const renew = setInterval(() => void lease.renew().catch(() => undefined), 30_000);
    try {
      const report = await rebuildIndexes(this.driver, {});
      this.opts.onInfo?.('index markers rebuilt', { ...report });
      this.markersNowComplete();
    } finally {
      clearInterval(renew);
    }
  }

  /** Figures computed before the markers were complete undercount sharing: compute them all. */
  private markersNowComplete(): void {
    this.markersComplete = true;
    for (const e of this.table.entries()) this.summaries.touch(e.name);
  }

  private async leaderDuties(): Promise<void> {
    if (this.leading || this.stopped || this.loadState !== 'ready') return;
    this.leading = true;
    try {
      // Another replica (the lease holder) may have completed them.
      if (!this.markersComplete && (await this.readState())) this.markersNowComplete();
      if (this.opts.readOnly) return;
      if (!this.lease || !(await this.lease.renew())) {
        this.lease = await Lease.acquire(this.driver, newHolderId(), LEASE_TTL_MS, 250, indexKeys.lease);
      }
      if (!this.lease) return;
      await this.feed.prune(this.opts.feedRetentionMs);
      if (!this.markersComplete) await this.rebuild(this.lease);
      await this.storeUsage.refreshIfDue();
      if (Date.now() - this.lastSnapshot >= this.opts.snapshotMs && this.summaries.pending === 0) {
        this.lastSnapshot = Date.now();
        await saveSnapshot(this.driver, [...this.table.entries()], this.feed.position);
      }
    } catch (e) {
      this.opts.onError?.('index maintenance', e);
    } finally {
      this.leading = false;
    }
  }
}
