// Repositories: the list (from the repository table, so a page costs its own
// size at any store size), one repository, and deleting one.
import { parseDigest } from '../storage/digest';
import { err } from '../storage/errors';
import type { RepoEntry, SortKey } from '../storage/index/table';
import { canPull, iso, paging, visibleRepository, type AdminCtx } from './context';
import { deletionPlan } from './deletion';

const SORTS: SortKey[] = ['name', 'pushed', 'size', 'unique'];

function repoJson(ctx: AdminCtx, e: RepoEntry) {
  const upstream = ctx.admin.upstreamOf?.(e.name);
  return {
    name: e.name,
    tags: e.tags,
    images: e.images,
    lastPush: iso(e.lastPush),
    logicalBytes: e.logicalBytes,
    uniqueBytes: e.uniqueBytes,
    /** When the figures were computed; null while they are being computed. */
    summarizedAt: iso(e.summarizedAt),
    ...(upstream && { upstream }),
  };
}

function indexReady(ctx: AdminCtx): void {
  if (ctx.admin.store.index.state !== 'ready') throw err('UNAVAILABLE', 'the repository index is loading; retry shortly');
}

export async function listRepositories(ctx: AdminCtx): Promise<void> {
  indexReady(ctx);
  const { limit, cursor } = paging(ctx);
  const sort = (ctx.query.sort ?? 'name') as SortKey;
  if (!SORTS.includes(sort)) throw err('UNSUPPORTED', `sort must be one of ${SORTS.join(', ')}`, { sort }, 400);
  const order = ctx.query.order ?? (sort === 'name' ? 'asc' : 'desc');
  if (order !== 'asc' && order !== 'desc') throw err('UNSUPPORTED', 'order must be asc or desc', { order }, 400);
  const q = typeof ctx.query.q === 'string' ? ctx.query.q : undefined;
  const { table } = ctx.admin.store.index;
  const visible = (n: string) => canPull(ctx, n);
  const page = table.query({ q, sort, desc: order === 'desc', cursor, limit, visible });
  const total = ctx.admin.totals.count(table, ctx.state.credential, q, visible);
  ctx.body = { repositories: page.items.map((e) => repoJson(ctx, e)), ...(page.next && { next: page.next }), total };
}

/** The table's entry, adding one the table missed (a repository another program wrote). */
async function entryOf(ctx: AdminCtx, name: string): Promise<RepoEntry> {
  indexReady(ctx);
  const { store } = ctx.admin;
  const e = store.index.table.get(name);
  if (e) return e;
  if (!(await store.repositoryExists(name))) throw err('NAME_UNKNOWN', 'repository name not known to registry', { name });
  return store.index.adopt(name);
}

export async function getRepository(ctx: AdminCtx, name: string): Promise<void> {
  const e = await entryOf(ctx, visibleRepository(ctx, name));
  const deletable = ctx.admin.store.deleteEnabled && ctx.state.auth.may('repository', name, 'delete');
  ctx.body = { ...repoJson(ctx, e), deletable };
}

/** What a delete would remove and what GC would then free: for the confirmation. */
export async function previewDelete(ctx: AdminCtx, name: string): Promise<void> {
  visibleRepository(ctx, name);
  const tag = typeof ctx.query.tag === 'string' ? ctx.query.tag : undefined;
  const digest = typeof ctx.query.digest === 'string' ? ctx.query.digest : undefined;
  if (tag && digest) throw err('UNSUPPORTED', 'give tag or digest, not both', undefined, 400);
  ctx.body = await deletionPlan(ctx.admin.store, name, tag ? { tag } : digest ? { digest } : {});
}

function checkDelete(ctx: AdminCtx, name: string): void {
  visibleRepository(ctx, name);
  if (!ctx.state.auth.may('repository', name, 'delete')) throw err('DENIED', 'requested access to the resource is denied', { name });
  if (!ctx.admin.store.deleteEnabled) throw err('UNSUPPORTED', 'deletes are disabled on this registry (storage.delete.enabled)');
}

export async function deleteRepository(ctx: AdminCtx, name: string): Promise<void> {
  checkDelete(ctx, name);
  const plan = await deletionPlan(ctx.admin.store, name, {});
  const removed = await ctx.admin.store.deleteRepository(name);
  ctx.status = 202;
  ctx.body = { ...removed, freeableBytes: plan.freeableBytes };
}

export async function deleteTag(ctx: AdminCtx, name: string, tag: string): Promise<void> {
  checkDelete(ctx, name);
  await ctx.admin.store.deleteManifest(name, tag);
  ctx.status = 202;
  ctx.body = { repository: name, tag };
}

export async function deleteImage(ctx: AdminCtx, name: string, digest: string): Promise<void> {
  checkDelete(ctx, name);
  if (!digest.includes(':')) throw err('DIGEST_INVALID', 'delete an image by digest (a tag is deleted under _tags)', { digest });
  const tags = await ctx.admin.store.tagsPointingAt(name, parseDigest(digest));
  await ctx.admin.store.deleteManifest(name, digest);
  ctx.status = 202;
  ctx.body = { repository: name, digest, tags };
}
