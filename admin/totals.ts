// The "N repositories" of a list: a count of every name the caller may see,
// which costs a walk of the whole table (100,000 rights checks at 100,000
// repositories). It depends only on which names exist, the filter and the
// caller's rights, so it is kept per caller and filter until a repository is
// added or removed. Rights can change under a kept count (a policy reload):
// it is recounted after MAX_AGE_MS at the latest. Only the caller's own count
// is kept for them: the key is a hash of their credential.
import crypto from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { RepoTable } from '../storage/index/table';
import { entryBytes } from '../storage/links';

const MAX_AGE_MS = 30_000;
/** About 200 bytes per entry: 1 MiB holds thousands of callers' counts. */
const MAX_BYTES = 1024 * 1024;

interface Kept {
  membership: number;
  total: number;
}

export class VisibleTotals {
  private readonly kept = new LRUCache<string, Kept>({ maxSize: MAX_BYTES, sizeCalculation: entryBytes, ttl: MAX_AGE_MS });

  /** `credential`: what the caller's rights come from (AdminState.credential). */
  count(table: RepoTable, credential: string, q: string | undefined, visible: (name: string) => boolean): number {
    const key = `${crypto.createHash('sha256').update(credential).digest('base64url')}\0${q?.toLowerCase() ?? ''}`;
    const kept = this.kept.get(key);
    if (kept && kept.membership === table.membership) return kept.total;
    const total = table.count(q, visible);
    this.kept.set(key, { membership: table.membership, total });
    return total;
  }
}
