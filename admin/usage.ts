// GET /berth/v1/usage: where the bytes are. Store-wide figures (stored,
// shared, the dedup ratio) come from the usage the index lease holder
// computes; per-repository figures from the repository table. Only what the
// caller may pull is named, summed or counted; store-wide totals need catalog rights.
import { err } from '../storage/errors';
import type { RepoEntry } from '../storage/index/table';
import { canPull, type AdminCtx } from './context';

const TOP = 20;

export async function getUsage(ctx: AdminCtx): Promise<void> {
  const { store } = ctx.admin;
  if (store.index.state !== 'ready') throw err('UNAVAILABLE', 'the repository index is loading; retry shortly');
  const u = await store.index.usage();
  const everything = ctx.state.auth.may('registry', 'catalog', '*');
  let logicalBytes = 0;
  let uniqueBytes = 0;
  let repositories = 0;
  const top: RepoEntry[] = [];
  for (const e of store.index.table.entries()) {
    if (!canPull(ctx, e.name)) continue;
    repositories++;
    logicalBytes += e.logicalBytes;
    uniqueBytes += e.uniqueBytes;
    if (top.length < TOP || e.uniqueBytes > top[top.length - 1].uniqueBytes) {
      top.push(e);
      top.sort((a, b) => b.uniqueBytes - a.uniqueBytes || (a.name < b.name ? -1 : 1));
      if (top.length > TOP) top.length = TOP;
    }
  }
  // A layer's digest and size are its repositories' data: counted over what the caller may pull, even with catalog rights.
  const sharedLayers = u.sharedLayers
    .map((l) => {
      const seen = Object.entries(l.repos).filter(([r]) => canPull(ctx, r));
      // Past the repositories the usage lists for a layer, a caller who may see all the listed ones gets the totals.
      const all = seen.length === Object.keys(l.repos).length;
      return { digest: l.digest, size: l.size, repositories: all ? l.repositories : seen.length, images: all ? l.images : seen.reduce((n, [, i]) => n + i, 0) };
    })
    // Images use layers; a blob only linked (a manifest in two repositories, a mounted layer no image uses yet) is not one.
    .filter((l) => l.repositories >= 2 && l.images > 0)
    .slice(0, TOP);
  ctx.body = {
    computedAt: u.computedAt,
    repositoryCount: repositories,
    logicalBytes,
    uniqueBytes,
    // Store-wide: they describe repositories a caller without catalog rights may not see.
    storedBytes: everything ? u.storedBytes : null,
    blobs: everything ? u.blobs : null,
    sharedBytes: everything ? u.sharedBytes : null,
    unusedBytes: everything ? u.unusedBytes : null,
    dedupRatio: everything ? (u.storedBytes ? logicalBytes / u.storedBytes : 1) : null,
    repositories: top.map((e) => ({ name: e.name, tags: e.tags, logicalBytes: e.logicalBytes, uniqueBytes: e.uniqueBytes })),
    sharedLayers,
  };
}
