// A repository's tags with what a person wants to see of each: what it is,
// for which platforms, how big, who pushed it when, what is attached to it.
import { parseDigest } from '../storage/digest';
import { referrerKind, type ReferrerKind } from '../storage/describe';
import { mapLimit } from '../storage/pool';
import type { ContentStore } from '../storage/store';
import { iso, paging, visibleRepository, type AdminCtx } from './context';

export type ReferrerCounts = Record<'signatures' | 'sboms' | 'attestations' | 'other', number>;

const PLURAL: Record<ReferrerKind, keyof ReferrerCounts> = { signature: 'signatures', sbom: 'sboms', attestation: 'attestations', other: 'other' };
/** cosign's tag scheme (before the referrers API): sha256-<hex>.sig / .att / .sbom beside the image. */
const COSIGN_TAGS: [string, keyof ReferrerCounts][] = [
  ['sig', 'signatures'],
  ['att', 'attestations'],
  ['sbom', 'sboms'],
];

/** Referrers of a manifest by kind, counting cosign's tag-scheme attachments too. */
export async function referrerCounts(store: ContentStore, repo: string, digest: string): Promise<ReferrerCounts> {
  const counts: ReferrerCounts = { signatures: 0, sboms: 0, attestations: 0, other: 0 };
  for (const r of await store.referrers(repo, digest)) counts[PLURAL[referrerKind(r.artifactType)]]++;
  const d = parseDigest(digest);
  for (const [suffix, kind] of COSIGN_TAGS) {
    const tag = `${d.algorithm}-${d.hex}.${suffix}`;
    if (await store.resolveReference(repo, tag).then(() => true, () => false)) counts[kind]++;
  }
  return counts;
}

export interface TagRow {
  name: string;
  digest: string;
  mediaType: string;
  kind: string;
  artifactType?: string;
  platforms: { os: string; architecture: string; variant?: string }[];
  size: number;
  pushedAt: string | null;
  pushedBy: string | null;
  referrers: ReferrerCounts;
}

/** A page of a repository's tags with what each is (for the API and `berth ls REPO`). */
export async function tagRows(store: ContentStore, repo: string, cursor: string | undefined, limit: number): Promise<{ tags: TagRow[]; next?: string }> {
  const page = await store.listTags(repo, cursor, limit);
  const rows = await mapLimit(page.items, 16, async (tag): Promise<TagRow | undefined> => {
    let digest: string;
    try {
      digest = await store.resolveReference(repo, tag);
    } catch {
      return undefined; // deleted since the listing
    }
    const [m, pushed, referrers] = await Promise.all([store.describer.describe(digest), store.index.tags.lastPush(repo, tag, digest), referrerCounts(store, repo, digest)]);
    return {
      name: tag,
      digest,
      mediaType: m?.mediaType ?? 'application/octet-stream',
      kind: m?.kind ?? 'artifact',
      ...(m?.artifactType && { artifactType: m.artifactType }),
      platforms: m?.platforms ?? [],
      size: m?.totalSize ?? 0,
      pushedAt: iso(pushed.at),
      pushedBy: pushed.by ?? null,
      referrers,
    };
  });
  return { tags: rows.filter((r): r is TagRow => Boolean(r)), ...(page.last && { next: page.last }) };
}

export async function listTags(ctx: AdminCtx, name: string): Promise<void> {
  const repo = visibleRepository(ctx, name);
  const { limit, cursor } = paging(ctx);
  ctx.body = { repository: repo, ...(await tagRows(ctx.admin.store, repo, cursor, limit)) };
}
