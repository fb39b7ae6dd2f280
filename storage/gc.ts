// Online garbage collection: mark what tags reach (index children, referrers of
// kept manifests, their blobs), sweep the rest while the registry keeps serving
// pushes and pulls. The protocol that makes this safe is in storage/GC.md;
// what each repository loses is decided in gcplan.ts.
import { parseDigest } from './digest';
import { isNotFound, type StorageDriver } from './driver';
import { RepoPlanner, type RepoPlan } from './gcplan';
import { clearExpiredIntents, intentKey, SweepIntent, type Lease } from './lease';
import type { SweptRepository } from './index/index';
import { paths } from './paths';
import { forEachLimit, mapLimit } from './pool';
import { purgeUploads, type PurgeResult } from './purge';
import type { RetentionPolicy } from './retention';
import { blobDataPath, blobDirPath, listBlobs, listDigests, listRepositories, RefsCache, scanRepository } from './scan';

export type { RetentionPolicy } from './retention';

export interface GcProgress {
  phase: string;
  done: number;
  total: number;
  /** What done and total count. */
  unit: string;
}

const UNITS: Record<string, string> = { 'list blobs': 'blob directories', mark: 'repositories', 'sweep repositories': 'tags and links', 'sweep blobs': 'blobs' };

export interface GcOptions {
  dryRun?: boolean;
  /** Remove manifests no tag reaches, in every repository. */
  deleteUntagged?: boolean;
  /** Nothing written, linked or tagged more recently than this is swept. */
  minAgeMs: number;
  retention?: RetentionPolicy[];
  /** Requests in flight to the driver. */
  concurrency?: number;
  /** Purge upload sessions older than this first. */
  purge?: { olderThanMs: number; dryRun: boolean };
  /** A sweep stops deleting after this long; writers that overlap it wait at most this long. */
  sweepBudgetMs?: number;
  /** The collector lease, re-checked before every sweep. */
  lease?: Lease;
  /** Collector id written into sweep intents. */
  holder?: string;
  onProgress?: (p: GcProgress) => void;
  /** What each repository lost, told before blobs are swept (the index's markers follow, storage/INDEX.md). */
  onSwept?: (repos: SweptRepository[]) => Promise<void>;
}

export interface GcReport {
  dryRun: boolean;
  repositories: number;
  tagsDeleted: number;
  manifestsKept: number;
  manifestsDeleted: number;
  layerLinksDeleted: number;
  blobsKept: number;
  blobsDeleted: number;
  bytesFreed: number;
  /** Planned deletions cancelled because the final re-check found them in use again. */
  rescued: number;
  /** A sweep ran out of its time budget; the rest waits for the next run. */
  incomplete?: boolean;
  /** The run's --min-age (ms). */
  minAgeMs: number;
  /** What would have gone but is younger than --min-age: kept this run, a later run decides. */
  young: { tags: number; manifests: number; layerLinks: number; blobs: number; blobBytes: number };
  uploads?: PurgeResult;
  phases: { name: string; ms: number }[];
  totalMs: number;
  /** What was (or in a dry run would be) removed, for display. */
  removed: { tags: string[]; manifests: string[]; layerLinks: string[]; blobs: string[] };
}

export class LeaseLostError extends Error {
  constructor() {
    super('the GC lease was taken over by another collector; stopping before the sweep');
    this.name = 'LeaseLostError';
  }
}

class Collector {
  private readonly conc: number;
  private readonly refs: RefsCache;
  private readonly planner: RepoPlanner;
  private readonly cutoff: number;
  private readonly phases: { name: string; ms: number }[] = [];
  private readonly holder: string;

  constructor(
    private readonly driver: StorageDriver,
    private readonly opts: GcOptions,
    private readonly startedAt: number,
  ) {
    this.conc = opts.concurrency ?? 16;
    this.refs = new RefsCache(driver);
    this.cutoff = startedAt - opts.minAgeMs;
    this.planner = new RepoPlanner(driver, this.refs, opts.retention, opts.deleteUntagged, this.cutoff, startedAt, this.conc);
    this.holder = opts.holder ?? 'gc';
  }

  private progress(phase: string, done: number, total: number): void {
    this.opts.onProgress?.({ phase, done, total, unit: UNITS[phase] ?? 'items' });
  }

  private async phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t = Date.now();
    try {
      return await fn();
    } finally {
      this.phases.push({ name, ms: Date.now() - t });
    }
  }

  async run(): Promise<GcReport> {
    const report: GcReport = {
      dryRun: Boolean(this.opts.dryRun),
      repositories: 0,
      tagsDeleted: 0,
      manifestsKept: 0,
      manifestsDeleted: 0,
      layerLinksDeleted: 0,
      blobsKept: 0,
      blobsDeleted: 0,
      bytesFreed: 0,
      rescued: 0,
      minAgeMs: this.opts.minAgeMs,
      young: { tags: 0, manifests: 0, layerLinks: 0, blobs: 0, blobBytes: 0 },
      phases: this.phases,
      totalMs: 0,
      removed: { tags: [], manifests: [], layerLinks: [], blobs: [] },
    };
    if (!this.opts.dryRun) await clearExpiredIntents(this.driver);
    if (this.opts.purge) {
      const purge = this.opts.purge;
      report.uploads = await this.phase('uploads', () => purgeUploads(this.driver, purge));
    }
    // Blobs are listed before any repository is scanned: a blob that appears
    // later is never a candidate, so a new blob is always seen with its link.
    const blobs = await this.phase('list blobs', () => listBlobs(this.driver, this.conc, (d, t) => this.progress('list blobs', d, t)));
    const repos = await this.phase('list repositories', () => listRepositories(this.driver));
    report.repositories = repos.length;

    const plans = await this.phase('mark', async () => {
      let done = 0;
      return mapLimit(repos, Math.max(1, this.conc >> 2), async (name) => {
        const plan = await this.planner.plan(await scanRepository(this.driver, name, this.conc));
        this.progress('mark', ++done, repos.length);
        return plan;
      });
    });

    const finalPlans = this.opts.dryRun ? plans : await this.phase('sweep repositories', () => this.sweepRepositories(plans, report));
    for (const p of finalPlans) {
      report.manifestsKept += p.keptRevisions.size;
      report.tagsDeleted += p.dropTags.size;
      report.manifestsDeleted += p.dropRevisions.size;
      report.layerLinksDeleted += p.dropLayers.size;
      report.young.tags += p.young.tags;
      report.young.manifests += p.young.manifests;
      report.young.layerLinks += p.young.layers;
      for (const [t] of p.dropTags) report.removed.tags.push(`${p.repo}:${t}`);
      for (const d of p.dropRevisions) report.removed.manifests.push(`${p.repo}@${d}`);
      for (const d of p.dropLayers) report.removed.layerLinks.push(`${p.repo}@${d}`);
    }

    await this.phase('sweep blobs', () => this.sweepBlobs(blobs, finalPlans, report));
    report.totalMs = Date.now() - this.startedAt;
    return report;
  }

  private async checkLease(): Promise<void> {
    if (this.opts.lease && !(await this.opts.lease.renew())) throw new LeaseLostError();
  }

  /**
   * Announce every planned tag/manifest/link deletion, plan again from fresh
   * reads, and delete only what both plans agree on (storage/GC.md).
   */
  private async sweepRepositories(plans: RepoPlan[], report: GcReport): Promise<RepoPlan[]> {
    const busy = plans.filter((p) => p.dropTags.size || p.dropRevisions.size || p.dropLayers.size);
    if (!busy.length) return plans;
    await this.checkLease();
    const keys: string[] = [];
    for (const p of busy) {
      for (const t of p.dropTags.keys()) keys.push(intentKey.tag(p.repo, t));
      for (const d of p.dropRevisions) keys.push(intentKey.revision(p.repo, d));
      for (const d of p.dropLayers) keys.push(intentKey.layer(p.repo, d));
    }
    const intent = await SweepIntent.announce(this.driver, this.holder, keys, this.opts.sweepBudgetMs ?? 120_000);
    try {
      const fresh = await mapLimit(busy, Math.max(1, this.conc >> 2), async (p) => this.planner.plan(await scanRepository(this.driver, p.repo, this.conc)));
      const finals = new Map<string, RepoPlan>();
      for (let i = 0; i < busy.length; i++) {
        const before = busy[i];
        const after = fresh[i];
        const final: RepoPlan = {
          ...after,
          dropTags: new Map([...before.dropTags].filter(([t, d]) => after.dropTags.get(t) === d)),
          dropRevisions: new Set([...before.dropRevisions].filter((d) => after.dropRevisions.has(d))),
          dropLayers: new Set([...before.dropLayers].filter((d) => after.dropLayers.has(d))),
        };
        report.rescued +=
          before.dropTags.size + before.dropRevisions.size + before.dropLayers.size - (final.dropTags.size + final.dropRevisions.size + final.dropLayers.size);
        finals.set(before.repo, final);
      }
      type Job = { kind: 'tag' | 'revision' | 'layer'; repo: string; id: string };
      const jobs: Job[] = [];
      for (const p of finals.values()) {
        for (const t of p.dropTags.keys()) jobs.push({ kind: 'tag', repo: p.repo, id: t });
        for (const d of p.dropRevisions) jobs.push({ kind: 'revision', repo: p.repo, id: d });
        for (const d of p.dropLayers) jobs.push({ kind: 'layer', repo: p.repo, id: d });
      }
      const done = await this.runDeletes(intent, jobs, (j) => this.removeRepoItem(j.kind, j.repo, j.id), 'sweep repositories', report);
      // Report only what was actually removed.
      for (const j of jobs) {
        if (done.has(j)) continue;
        const p = finals.get(j.repo)!;
        if (j.kind === 'tag') p.dropTags.delete(j.id);
        else if (j.kind === 'revision') p.dropRevisions.delete(j.id);
        else p.dropLayers.delete(j.id);
      }
      const swept = [...finals.values()].filter((p) => p.dropTags.size || p.dropRevisions.size || p.dropLayers.size);
      if (swept.length) {
        await this.opts.onSwept?.(swept.map((p) => ({ repo: p.repo, tags: [...p.dropTags], revisions: [...p.dropRevisions], layers: [...p.dropLayers] })));
      }
      return plans.map((p) => finals.get(p.repo) ?? p);
    } finally {
      await intent.close();
    }
  }

  /** Run deletions while the intent is open; what the deadline cuts off waits for the next run. Returns the jobs done. */
  private async runDeletes<T>(intent: SweepIntent, items: T[], del: (item: T) => Promise<void>, phase: string, report: GcReport): Promise<Set<T>> {
    const done = new Set<T>();
    await forEachLimit(items, this.conc, async (item) => {
      if (!intent.open) return;
      await del(item);
      done.add(item);
      this.progress(phase, done.size, items.length);
    });
    if (done.size < items.length) report.incomplete = true;
    return done;
  }

  private async removeRepoItem(kind: 'tag' | 'revision' | 'layer', repo: string, id: string): Promise<void> {
    if (kind === 'tag') return this.remove(paths.tagDir(repo, id));
    const d = parseDigest(id);
    if (kind === 'layer') return this.remove(paths.layerLinkDir(repo, d));
    const subject = (await this.refs.get(id))?.subject;
    await this.remove(paths.revisionDir(repo, d));
    if (subject) await this.remove(paths.referrerLink(repo, parseDigest(subject), d).replace(/\/link$/, ''));
  }

  private async remove(path: string): Promise<void> {
    try {
      await this.driver.delete(path);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  private async sweepBlobs(blobs: string[], plans: RepoPlan[], report: GcReport): Promise<void> {
    // In use: every link that stays, and every blob a kept manifest references (even if unlinked).
    const used = new Set<string>();
    for (const p of plans) {
      for (const d of p.keptBlobs) used.add(d);
      for (const d of p.layers) if (!p.dropLayers.has(d)) used.add(d);
      for (const d of p.revisions) if (!p.dropRevisions.has(d)) used.add(d);
    }
    const loose = blobs.filter((d) => !used.has(d));
    const stats = await mapLimit(loose, this.conc, async (d) => {
      try {
        return await this.driver.stat(blobDataPath(d));
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    });
    const candidates = new Map<string, number>();
    loose.forEach((d, i) => {
      const st = stats[i];
      if (st && st.modTime.getTime() < this.cutoff) candidates.set(d, st.size);
      else if (st) {
        report.young.blobs++;
        report.young.blobBytes += st.size;
      }
    });
    report.blobsKept = blobs.length - candidates.size;
    if (this.opts.dryRun || !candidates.size) {
      if (this.opts.dryRun) this.account(report, candidates);
      return;
    }
    await this.checkLease();
    const intent = await SweepIntent.announce(this.driver, this.holder, [...candidates.keys()].map(intentKey.blob), this.opts.sweepBudgetMs ?? 120_000);
    try {
      // The final re-check: every link in the store, listed afresh after the intent is durable.
      for (const repo of await listRepositories(this.driver)) {
        const [layers, revisions] = await Promise.all([listDigests(this.driver, paths.layersRoot(repo)), listDigests(this.driver, paths.revisionsRoot(repo))]);
        for (const d of [...layers, ...revisions]) if (candidates.delete(d)) report.rescued++;
      }
      const done = await this.runDeletes(intent, [...candidates.keys()], (d) => this.remove(blobDirPath(d)), 'sweep blobs', report);
      for (const d of candidates.keys()) if (!done.has(d)) candidates.delete(d);
      this.account(report, candidates);
    } finally {
      await intent.close();
    }
  }

  private account(report: GcReport, deleted: Map<string, number>): void {
    report.blobsDeleted = deleted.size;
    for (const [d, size] of deleted) {
      report.bytesFreed += size;
      report.removed.blobs.push(d);
    }
  }
}

/** One collection run. Acquiring the lease is the caller's job (see runWithLease). */
export async function collectGarbage(driver: StorageDriver, opts: GcOptions): Promise<GcReport> {
  return new Collector(driver, opts, Date.now()).run();
}
