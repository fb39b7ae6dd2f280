// GC's mark phase: what one repository loses under the run's retention
// policies and --min-age (storage/GC.md). Pure reads, so the sweep runs it
// again for its final re-check.
import { parseDigest } from './digest';
import { isNotFound, type StorageDriver } from './driver';
import { paths } from './paths';
import { forEachLimit, mapLimit } from './pool';
import { compilePolicies, type CompiledPolicy, type RetentionPolicy } from './retention';
import type { Refs, RefsCache, RepoState } from './scan';

export interface RepoPlan {
  repo: string;
  /** tag -> the digest it pointed at when planned */
  dropTags: Map<string, string>;
  dropRevisions: Set<string>;
  dropLayers: Set<string>;
  keptRevisions: Set<string>;
  /** Blobs the kept manifests reference. */
  keptBlobs: Set<string>;
  /** The repository's links when planned. */
  layers: Set<string>;
  revisions: Set<string>;
  /** Items kept only because they are younger than the cutoff. */
  young: { tags: number; manifests: number; layers: number };
}

export class RepoPlanner {
  private readonly policies: CompiledPolicy[];

  constructor(
    private readonly driver: StorageDriver,
    private readonly refs: RefsCache,
    retention: RetentionPolicy[] | undefined,
    private readonly deleteUntagged: boolean | undefined,
    /** Nothing written, linked or tagged more recently than this (ms since the epoch) is dropped. */
    private readonly cutoff: number,
    private readonly startedAt: number,
    private readonly conc: number,
  ) {
    this.policies = compilePolicies(retention);
  }

  private policyFor(repo: string): CompiledPolicy | undefined {
    return this.policies.find((p) => p.name.test(repo));
  }

  /** Decide what a repository loses. Pure reads; run again for the final re-check. */
  async plan(state: RepoState): Promise<RepoPlan> {
    const { driver } = this;
    const repo = state.name;
    const policy = this.policyFor(repo);

    const young = { tags: 0, manifests: 0, layers: 0 };
    const dropTags = new Map<string, string>();
    if (policy && (policy.keeplatest !== undefined || policy.keep)) {
      const candidates = [...state.tags.keys()].filter((t) => !policy.keep?.test(t));
      const times = await mapLimit(candidates, this.conc, (t) => modTime(driver, paths.tagCurrentLink(repo, t)));
      const byAge = candidates.map((t, i) => ({ t, at: times[i] ?? Infinity })).sort((a, b) => b.at - a.at || a.t.localeCompare(b.t));
      const keepN = policy.keeplatest ?? 0;
      for (const { t, at } of byAge.slice(keepN)) {
        if (at < this.cutoff) dropTags.set(t, state.tags.get(t)!);
        else if (at !== Infinity) young.tags++;
      }
    }

    const revisions = [...state.revisions];
    const refs = new Map<string, Refs>();
    await forEachLimit(revisions, this.conc, async (d) => {
      const r = await this.refs.get(d);
      if (r) refs.set(d, r);
    });
    const referrers = new Map<string, string[]>();
    for (const [d, r] of refs) if (r.subject) referrers.set(r.subject, [...(referrers.get(r.subject) ?? []), d]);

    const kept = new Set<string>();
    const reach = (roots: Iterable<string>) => {
      const todo = [...roots];
      while (todo.length) {
        const d = todo.pop()!;
        if (kept.has(d) || !state.revisions.has(d)) continue;
        kept.add(d);
        todo.push(...(refs.get(d)?.children ?? []), ...(referrers.get(d) ?? []));
      }
    };
    reach([...state.tags].filter(([t]) => !dropTags.has(t)).map(([, d]) => d));
    const deleteUntagged = this.deleteUntagged || policy?.untaggedage !== undefined;
    const dropRevisions = new Set<string>();
    if (!deleteUntagged) {
      reach(revisions);
    } else {
      const untaggedCutoff = Math.min(this.cutoff, this.startedAt - (policy?.untaggedage ?? 0));
      const others = revisions.filter((d) => !kept.has(d));
      const times = await mapLimit(others, this.conc, (d) => modTime(driver, paths.revisionLink(repo, parseDigest(d))));
      // Young manifests are roots: a push in progress (index children before the index, a referrer before its tag).
      // Those younger than --min-age first, to count what it held back (with what they reach).
      const before = kept.size;
      reach(others.filter((_, i) => times[i] !== undefined && times[i]! >= this.cutoff));
      young.manifests = kept.size - before;
      reach(others.filter((_, i) => !(times[i]! < untaggedCutoff)));
      for (const d of revisions) if (!kept.has(d)) dropRevisions.add(d);
    }

    const keptBlobs = new Set<string>();
    for (const d of kept) for (const b of refs.get(d)?.blobs ?? []) keptBlobs.add(b);
    const loose = [...state.layers].filter((d) => !keptBlobs.has(d));
    const times = await mapLimit(loose, this.conc, (d) => modTime(driver, paths.layerLink(repo, parseDigest(d))));
    const dropLayers = new Set(loose.filter((_, i) => times[i]! < this.cutoff));
    young.layers = times.filter((t) => t !== undefined && t >= this.cutoff).length;
    return { repo, dropTags, dropRevisions, dropLayers, keptRevisions: kept, keptBlobs, layers: state.layers, revisions: state.revisions, young };
  }
}

async function modTime(driver: StorageDriver, path: string): Promise<number | undefined> {
  try {
    return (await driver.stat(path)).modTime.getTime();
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}
