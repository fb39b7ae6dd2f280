// A repository's figures, computed from the layout and the blob-users index:
// what the repository table shows and sorts by.
import { parseDigest } from '../digest';
import type { ManifestInfo } from '../describe';
import type { RepoFigures } from './table';
import type { BlobUsers } from './users';

export interface SummaryDeps {
  users: BlobUsers;
  describe(digest: string): Promise<ManifestInfo | undefined>;
  /** Every tag of the repository and the digest it points at. */
  repoTags(repo: string): Promise<Map<string, string>>;
  /** When the tag was last pushed (epoch ms), if known. */
  pushedAt(repo: string, tag: string, digest: string): Promise<number | undefined>;
}

/**
 * Figures of one repository. `knownLastPush` (from the change feed) saves
 * reading every tag's push time; 0 reads them.
 */
export async function summarize(deps: SummaryDeps, repo: string, knownLastPush: number): Promise<RepoFigures> {
  const tags = await deps.repoTags(repo);
  const blobs = new Map<string, number>();
  let images = 0;
  let logicalBytes = 0;
  const addImage = (m: ManifestInfo) => {
    blobs.set(m.digest, m.size);
    if (m.config) blobs.set(m.config.digest, m.config.size);
    for (const l of m.layers) blobs.set(l.digest, l.size);
  };
  for (const digest of new Set(tags.values())) {
    const m = await deps.describe(digest);
    if (!m) continue;
    images++;
    logicalBytes += m.totalSize;
    addImage(m);
    for (const c of m.children) {
      const child = await deps.describe(c.digest);
      if (child) addImage(child);
    }
  }
  let uniqueBytes = 0;
  for (const [digest, size] of blobs) {
    if ((await deps.users.others(parseDigest(digest), repo, 1)).length === 0) uniqueBytes += size;
  }
  let lastPush = knownLastPush;
  if (!lastPush) {
    for (const [tag, digest] of tags) lastPush = Math.max(lastPush, (await deps.pushedAt(repo, tag, digest)) ?? 0);
  }
  return { tags: tags.size, images, lastPush, logicalBytes, uniqueBytes };
}
