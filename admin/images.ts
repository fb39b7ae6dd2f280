// One image (or index, or artifact) in full, and the images a blob is part of:
// the dedup picture, from the blob-users index.
import { parseDigest, type Digest } from '../storage/digest';
import { parseJson, referrerKind, type ManifestInfo } from '../storage/describe';
import { err } from '../storage/errors';
import { mapLimit } from '../storage/pool';
import type { ContentStore } from '../storage/store';
import { canPull, paging, visibleRepository, type AdminCtx } from './context';

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);

/** The parts of an image config people look at (OCI image-spec config, Docker's alike). */
function imageFacts(config: Json) {
  const c = obj(config.config);
  return {
    created: str(config.created) ?? null,
    os: str(config.os) ?? null,
    architecture: str(config.architecture) ?? null,
    ...(str(config.variant) && { variant: config.variant as string }),
    ...(str(config.author) && { author: config.author as string }),
    entrypoint: strings(c.Entrypoint),
    cmd: strings(c.Cmd),
    env: strings(c.Env),
    labels: Object.fromEntries(Object.entries(obj(c.Labels)).filter(([, v]) => typeof v === 'string')),
    exposedPorts: Object.keys(obj(c.ExposedPorts)),
    ...(str(c.WorkingDir) && { workingDir: c.WorkingDir as string }),
    ...(str(c.User) && { user: c.User as string }),
    history: (Array.isArray(config.history) ? config.history : []).map((h) => {
      const e = obj(h);
      return { created: str(e.created), createdBy: str(e.created_by), comment: str(e.comment), emptyLayer: e.empty_layer === true };
    }),
  };
}

/** Other images (and their repositories) the caller may see that contain the blob. */
async function sharing(ctx: AdminCtx, blob: string, repo: string, image: string) {
  const use = await ctx.admin.store.index.users.list(parseDigest(blob));
  const others = use.images.filter((i) => !(i.repo === repo && i.digest === image) && canPull(ctx, i.repo));
  return { sharedImages: others.length, sharedRepositories: new Set(others.map((i) => i.repo)).size };
}

export async function getImage(ctx: AdminCtx, name: string, reference: string): Promise<void> {
  const repo = visibleRepository(ctx, name);
  const { store } = ctx.admin;
  const digest = await store.resolveReference(repo, reference);
  const m = await store.describer.describe(digest);
  const bytes = await store.blobBytes(digest);
  const manifest = bytes && parseJson(bytes);
  if (!m || !manifest) throw err('MANIFEST_UNKNOWN', 'manifest unknown', { name: repo, reference });
  const [tags, referrers] = await Promise.all([store.tagsPointingAt(repo, parseDigest(digest)), store.referrers(repo, digest)]);
  const out: Json = {
    repository: repo,
    digest,
    mediaType: m.mediaType,
    kind: m.kind,
    ...(m.artifactType && { artifactType: m.artifactType }),
    size: m.totalSize,
    tags: tags.sort(),
    manifest,
    ...(m.subject && { subject: m.subject }),
    referrers: referrers.map((r) => ({ ...r, kind: referrerKind(r.artifactType) })),
  };
  if (m.kind === 'index') out.platforms = await platforms(ctx, m);
  if (m.config) {
    const cfgBytes = await store.blobBytes(m.config.digest);
    const config = cfgBytes && parseJson(cfgBytes);
    if (config) out.config = config;
    const layers = await mapLimit(m.layers, 8, async (l) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size, ...(await sharing(ctx, l.digest, repo, digest)) }));
    if (m.kind === 'image') out.image = { ...imageFacts(config ?? {}), layers };
    else out.layers = layers;
  }
  ctx.body = out;
}

async function platforms(ctx: AdminCtx, m: ManifestInfo) {
  return mapLimit(m.children, 8, async (c) => {
    const child = await ctx.admin.store.describer.describe(c.digest);
    return { digest: c.digest, mediaType: c.mediaType, size: child?.totalSize ?? c.size, platform: c.platform ?? child?.platforms[0] ?? null, ...(child && { kind: child.kind }) };
  });
}

export interface BlobImages {
  digest: string;
  size: number | null;
  /** Repositories that use the blob (link it or have an image with it). */
  repositories: number;
  images: { repository: string; digest: string; tags: string[] }[];
  next?: string;
}

/** The images that contain a blob, among the repositories `visible` admits (for the API and `berth images`). */
export async function blobImages(store: ContentStore, d: Digest, visible: (repo: string) => boolean, cursor: string | undefined, limit: number): Promise<BlobImages> {
  const use = await store.index.users.list(d);
  const order = (a: { repo: string; digest: string }, b: { repo: string; digest: string }) =>
    a.repo === b.repo ? (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0) : a.repo < b.repo ? -1 : 1;
  const images = use.images.filter((i) => visible(i.repo)).sort(order);
  const repositories = [...use.repos].filter(visible).length;
  if (repositories === 0) throw err('BLOB_UNKNOWN', 'blob unknown to registry', { digest: d.value });
  let start = 0;
  if (cursor) {
    const at = cursor.lastIndexOf('@');
    const from = { repo: cursor.slice(0, at), digest: cursor.slice(at + 1) };
    while (start < images.length && order(images[start], from) <= 0) start++;
  }
  const slice = images.slice(start, start + limit);
  const page = await mapLimit(slice, 8, async (i) => ({ repository: i.repo, digest: i.digest, tags: (await store.tagsPointingAt(i.repo, parseDigest(i.digest))).sort() }));
  const last = slice[slice.length - 1];
  return {
    digest: d.value,
    size: (await store.globalBlobSize(d)) ?? null,
    repositories,
    images: page,
    ...(start + limit < images.length && last && { next: `${last.repo}@${last.digest}` }),
  };
}

/** Which images contain a blob (only those the caller may pull). */
export async function imagesContaining(ctx: AdminCtx, digest: string): Promise<void> {
  const { limit, cursor } = paging(ctx);
  ctx.body = await blobImages(ctx.admin.store, parseDigest(digest), (r) => canPull(ctx, r), cursor, limit);
}
