// Disk usage as clients see it against what is stored: the dedup ratio made
// visible. Logical bytes of a repository are the sizes of its tagged images
// (each image counted whole: manifest, config, layers; an index with its
// children), summed over distinct tagged manifests. Stored bytes are the blob
// store's files, each counted once however many repositories use it, and they
// add up: a repository uses a blob it links (a layer link or a manifest
// revision); a blob one repository alone uses is that repository's unique
// bytes (what deleting it would free), one that two or more use is shared, one
// that none uses is unreferenced (what gc removes). So
//   sum of uniqueBytes + sharedBytes + unreferencedBytes = storedBytes.
import { isNotFound, type StorageDriver } from './driver';
import { paths } from './paths';
import { forEachLimit } from './pool';
import { listRepositories, RefsCache, scanRepository } from './scan';

export interface RepoUsage {
  repository: string;
  /** Distinct tagged manifests. */
  images: number;
  tags: number;
  /** Sum over the repository's images of their full size. */
  logicalBytes: number;
  /** Bytes of the blobs (manifests included) that only this repository uses: what deleting it would free. */
  uniqueBytes: number;
  uniqueBlobs: number;
  /** Blobs its images reference that the store does not hold. */
  missingBlobs: number;
}

export interface Usage {
  repositories: RepoUsage[];
  logicalBytes: number;
  storedBytes: number;
  blobs: number;
  /** Blobs two or more repositories use. */
  sharedBytes: number;
  sharedBlobs: number;
  /** Blobs no repository uses (gc removes them once older than its min-age). */
  unreferencedBytes: number;
  unreferencedBlobs: number;
  /** logical / stored (1 when nothing is stored). */
  dedupRatio: number;
  computedAt: string;
  ms: number;
}

/** Sizes of every blob in the store, from one walk (list-based on S3). */
export async function blobSizes(driver: StorageDriver): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const prefix = `${paths.blobsRoot}/`;
  try {
    await driver.walk(paths.blobsRoot, (info) => {
      if (info.isDir || !info.path.endsWith('/data')) return;
      // <blobsRoot>/<alg>/<2hex>/<hex>/data
      const [alg, , hex] = info.path.slice(prefix.length).split('/');
      sizes.set(`${alg}:${hex}`, info.size);
    });
  } catch (e) {
    if (!isNotFound(e)) throw e; // an empty store has no blobs directory yet
  }
  return sizes;
}

export async function diskUsage(driver: StorageDriver, opts: { concurrency?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<Usage> {
  const started = Date.now();
  const conc = opts.concurrency ?? 16;
  const [sizes, repos] = await Promise.all([blobSizes(driver), listRepositories(driver)]);
  const refs = new RefsCache(driver);
  const out: RepoUsage[] = [];
  // Blob -> the one repository that uses it, or SHARED once a second one does.
  const SHARED = '';
  const owner = new Map<string, string>();
  let done = 0;
  await forEachLimit(repos, Math.max(1, conc >> 2), async (name) => {
    const state = await scanRepository(driver, name, conc);
    for (const d of [...state.layers, ...state.revisions]) {
      const o = owner.get(d);
      owner.set(d, o === undefined || o === name ? name : SHARED);
    }
    const images = [...new Set(state.tags.values())].filter((d) => state.revisions.has(d));
    const repoBlobs = new Set<string>();
    let logical = 0;
    for (const top of images) {
      const own = new Set<string>();
      const visit = async (d: string) => {
        if (own.has(d)) return;
        own.add(d);
        const r = await refs.get(d);
        for (const b of r?.blobs ?? []) own.add(b);
        for (const c of r?.children ?? []) if (state.revisions.has(c)) await visit(c);
      };
      await visit(top);
      for (const d of own) {
        logical += sizes.get(d) ?? 0;
        repoBlobs.add(d);
      }
    }
    const missing = [...repoBlobs].filter((d) => !sizes.has(d)).length;
    out.push({ repository: name, images: images.length, tags: state.tags.size, logicalBytes: logical, uniqueBytes: 0, uniqueBlobs: 0, missingBlobs: missing });
    opts.onProgress?.(++done, repos.length);
  });
  out.sort((a, b) => a.repository.localeCompare(b.repository));
  const byName = new Map(out.map((r) => [r.repository, r]));
  const usage = { storedBytes: 0, sharedBytes: 0, sharedBlobs: 0, unreferencedBytes: 0, unreferencedBlobs: 0 };
  for (const [d, size] of sizes) {
    usage.storedBytes += size;
    const o = owner.get(d);
    if (o === undefined) {
      usage.unreferencedBytes += size;
      usage.unreferencedBlobs++;
    } else if (o === SHARED) {
      usage.sharedBytes += size;
      usage.sharedBlobs++;
    } else {
      byName.get(o)!.uniqueBytes += size;
      byName.get(o)!.uniqueBlobs++;
    }
  }
  const logicalBytes = out.reduce((n, r) => n + r.logicalBytes, 0);
  return {
    repositories: out,
    logicalBytes,
    ...usage,
    blobs: sizes.size,
    dedupRatio: usage.storedBytes ? logicalBytes / usage.storedBytes : 1,
    computedAt: new Date().toISOString(),
    ms: Date.now() - started,
  };
}
