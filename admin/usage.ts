// GET /berth/v1/usage: where the bytes are. Store-wide figures (stored,
// shared, the dedup ratio) come from the usage the index lease holder
// computes; per-repository figures from the repository table. Only what the
// caller may pull is named or summed; store-wide totals need catalog rights.
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
  const sharedLayers = u.sharedLayers
    .map((l) => {
      if (everything) return { digest: l.digest, size: l.size, repositories: l.repositories, images: l.images };
      const seen = Object.entries(l.repos).filter(([r]) => canPull(ctx, r));
      return { digest: l.digest, size: l.size, repositories: seen.length, images: seen.reduce((n, [, i]) => n + i, 0) };
    })
    .filter((l) => l.repositories >= 2)
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
