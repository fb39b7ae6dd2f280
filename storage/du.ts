// Disk usage as clients see it against what is stored: the dedup ratio made
// visible. Logical bytes of a repository are the sizes of its tagged images
// (each image counted whole: manifest, config, layers; an index with its
// children), summed over distinct tagged manifests. Stored bytes are the blob
// store's files, each counted once however many repositories use it.
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
  /** Bytes of the distinct blobs (manifests included) its images use. */
  uniqueBytes: number;
  /** Blobs its images reference that the store does not hold. */
  missingBlobs: number;
}

export interface Usage {
  repositories: RepoUsage[];
  logicalBytes: number;
  storedBytes: number;
  blobs: number;
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
  let done = 0;
  await forEachLimit(repos, Math.max(1, conc >> 2), async (name) => {
    const state = await scanRepository(driver, name, conc);
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
    let unique = 0;
    let missing = 0;
    for (const d of repoBlobs) {
      const s = sizes.get(d);
      if (s === undefined) missing++;
      else unique += s;
    }
    out.push({ repository: name, images: images.length, tags: state.tags.size, logicalBytes: logical, uniqueBytes: unique, missingBlobs: missing });
    opts.onProgress?.(++done, repos.length);
  });
  out.sort((a, b) => a.repository.localeCompare(b.repository));
  const logicalBytes = out.reduce((n, r) => n + r.logicalBytes, 0);
  let storedBytes = 0;
  for (const s of sizes.values()) storedBytes += s;
  return {
    repositories: out,
    logicalBytes,
    storedBytes,
    blobs: sizes.size,
    dedupRatio: storedBytes ? logicalBytes / storedBytes : 1,
    computedAt: new Date().toISOString(),
    ms: Date.now() - started,
  };
}
