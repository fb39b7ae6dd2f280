// What a delete takes away and what garbage collection would then free: the
// confirmation a person reads before deleting a tag, an image or a repository.
import { parseDigest, type Digest } from '../storage/digest';
import { err } from '../storage/errors';
import { paths } from '../storage/paths';
import { mapLimit } from '../storage/pool';
import { listDigests } from '../storage/scan';
import type { ContentStore } from '../storage/store';

export interface DeletionPlan {
  repository: string;
  /** Tags that go. */
  tags: string[];
  /** Manifests that go. */
  manifests: string[];
  /** Manifests left without a tag (a tag delete): GC removes them with delete-untagged. */
  untagged: string[];
  /** Bytes no other image or repository uses: what GC frees once they are gone. */
  freeableBytes: number;
}

export async function deletionPlan(store: ContentStore, repo: string, what: { tag?: string; digest?: string }): Promise<DeletionPlan> {
  const plan: DeletionPlan = { repository: repo, tags: [], manifests: [], untagged: [], freeableBytes: 0 };
  let going: string[];
  if (what.tag !== undefined || what.digest !== undefined) {
    const digest = await store.resolveReference(repo, what.digest ?? what.tag!);
    const d = parseDigest(digest);
    const tags = await store.tagsPointingAt(repo, d);
    if (what.tag !== undefined) {
      plan.tags = [what.tag];
      // Still tagged elsewhere: the image stays, nothing is freed.
      if (tags.some((t) => t !== what.tag)) return plan;
      plan.untagged = [digest];
    } else {
      plan.tags = tags;
      plan.manifests = [digest];
    }
    going = [digest];
  } else {
    if (!(await store.repositoryExists(repo))) throw err('NAME_UNKNOWN', 'repository name not known to registry', { name: repo });
    plan.tags = [...(await store.allTags(repo)).keys()];
    plan.manifests = await listDigests(store.driver, paths.revisionsRoot(repo));
    going = plan.manifests;
  }
  plan.freeableBytes = await freeable(store, repo, going, what.tag === undefined && what.digest === undefined);
  return plan;
}

/**
 * Bytes of the blobs the going images use that nothing else does: no image
 * outside `going`, and (unless the whole repository goes) no other image of
 * it. An image another one still includes (an index's child) frees nothing;
 * the untagged children of a going index go with it.
 */
async function freeable(store: ContentStore, repo: string, going: string[], wholeRepository: boolean): Promise<number> {
  const goingSet = new Set(going);
  const sizes = new Map<string, number>();
  const visit = async (g: string): Promise<void> => {
    if (!wholeRepository && (await usedElsewhere(store, parseDigest(g), repo, goingSet, false))) return;
    const m = await store.describer.describe(g);
    if (!m) return;
    sizes.set(m.digest, m.size);
    for (const x of [...(m.config ? [m.config] : []), ...m.layers, ...m.children]) sizes.set(x.digest, x.size);
    for (const c of m.children) {
      if (goingSet.has(c.digest) || (await store.tagsPointingAt(repo, parseDigest(c.digest))).length) continue;
      goingSet.add(c.digest);
      await visit(c.digest);
    }
  };
  for (const g of going) await visit(g);
  if (wholeRepository) {
    // Layers it links that no manifest uses (an upload never referenced) go too.
    for (const l of await listDigests(store.driver, paths.layersRoot(repo))) {
      if (!sizes.has(l)) sizes.set(l, (await store.globalBlobSize(parseDigest(l))) ?? 0);
    }
  }
  const free = await mapLimit([...sizes], 16, async ([digest, size]) => ((await usedElsewhere(store, parseDigest(digest), repo, goingSet, wholeRepository)) ? 0 : size));
  return free.reduce((a, b) => a + b, 0);
}

async function usedElsewhere(store: ContentStore, d: Digest, repo: string, going: Set<string>, wholeRepository: boolean): Promise<boolean> {
  const use = await store.index.users.list(d);
  if ([...use.repos].some((r) => r !== repo)) return true;
  if (wholeRepository) return false;
  return use.images.some((i) => i.repo === repo && !going.has(i.digest));
}
