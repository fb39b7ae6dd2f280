// The content store: blobs stored once by digest, repositories that link to
// them, manifests, tags, referrers and the catalog. It knows nothing of HTTP;
// failures are RegistryErrors with the spec's codes.
import { LRUCache } from 'lru-cache';
import type { Readable } from 'node:stream';
import { digestOf, parseDigest, type Digest } from './digest';
import { isNotFound, type FileWriter, type StorageDriver } from './driver';
import { err, RegistryError } from './errors';
import { intentKey, waitForSweeps } from './lease';
import { MAX_MANIFEST_SIZE, parseManifest, type Descriptor } from './manifest';
import { checkName, checkTag, isValidName, isValidTag } from './names';
import { paths } from './paths';
import { mapLimit } from './pool';
import { isRepository, listOrEmpty, repositoryNames } from './repositories';
import { removedWhileWritten, UploadManager } from './uploads';
import type { BlobCache } from './blobcache';
import { Describer } from './describe';
import { StoreIndex, type IndexOptions } from './index/index';
import { references } from './index/rebuild';
import { listDigests } from './scan';

export interface StoreOptions {
  deleteEnabled: boolean;
  /** Serve blobs by redirecting to the driver's URLs (S3 presigned) when it has them. */
  redirect: boolean;
  /** How long facts another replica may change (tags, links) are trusted, in ms. */
  linkCacheTtlMs: number;
  /** Bytes of manifest content kept in memory (immutable by digest). */
  manifestCacheBytes: number;
  /** Blob content kept on local disk (for a backend across the network). */
  blobCache?: BlobCache;
  index?: Partial<IndexOptions>;
}

export const defaultStoreOptions: StoreOptions = {
  deleteEnabled: false,
  redirect: true,
  linkCacheTtlMs: 1000,
  manifestCacheBytes: 64 * 1024 * 1024,
};

export interface BlobInfo {
  digest: string;
  size: number;
}

export interface ManifestContent {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface Page<T> {
  items: T[];
  /** More items follow this one when set. */
  last?: string;
}

export interface PutManifestResult {
  digest: string;
  subject?: string;
}

/** What a repository delete removed. */
export interface RepositoryRemoval {
  repository: string;
  tags: number;
  manifests: number;
}

const CATALOG_TTL_MS = 2000;

/** Lookups answered from an in-process cache (hits) or the backend (misses). */
export interface CacheStats {
  hits: number;
  misses: number;
}

export class ContentStore {
  readonly uploads: UploadManager;
  readonly index: StoreIndex;
  /** What stored manifests are (kind, platforms, sizes), cached by digest. */
  readonly describer: Describer;
  private readonly opts: StoreOptions;
  // Content by digest never changes: cache it freely.
  private readonly manifests: LRUCache<string, ManifestContent>;
  private readonly blobSizes = new LRUCache<string, number>({ max: 100_000 });
  // Facts another replica can change: cached briefly.
  private readonly links: LRUCache<string, string>;
  private readonly linkReads = new Map<string, Promise<string>>();
  private catalog?: { at: number; names: Promise<string[]> };
  /** Read by the metrics endpoint. */
  readonly cacheStats: Record<'manifest' | 'blobsize' | 'link', CacheStats> & { blobdata?: CacheStats } = {
    manifest: { hits: 0, misses: 0 },
    blobsize: { hits: 0, misses: 0 },
    link: { hits: 0, misses: 0 },
  };

  constructor(
    readonly driver: StorageDriver,
    opts: Partial<StoreOptions> = {},
  ) {
    this.opts = { ...defaultStoreOptions, ...opts };
    if (this.opts.blobCache) this.cacheStats.blobdata = this.opts.blobCache.stats;
    this.manifests = new LRUCache({
      maxSize: this.opts.manifestCacheBytes,
      sizeCalculation: (m) => m.bytes.length + 256,
    });
    this.links = new LRUCache({ max: 100_000, ttl: Math.max(1, this.opts.linkCacheTtlMs) });
    this.describer = new Describer((d) => this.blobBytes(d));
    this.index = new StoreIndex(driver, { describe: (d) => this.describer.describe(d), repoTags: (r) => this.allTags(r) }, this.opts.index);
    this.uploads = new UploadManager(driver, {
      commit: (repo, d, size, data) => this.commitBlob(repo, d, size, data),
      directWriter: async (d) => (driver.atomicWriter && !(await this.blobExistsFresh(d)) ? driver.atomicWriter(paths.blobData(d)) : undefined),
    });
  }

  get deleteEnabled(): boolean {
    return this.opts.deleteEnabled;
  }

  // ---- links -------------------------------------------------------------

  /**
   * The digest a link file points to, or undefined when it is missing. Misses
   * of one path share one read: when a hot tag's entry expires, the requests
   * in flight wait for one getContent instead of each issuing their own.
   * `fresh` reads now, past the cache and any read begun earlier.
   */
  private async readLink(path: string, fresh = false): Promise<string | undefined> {
    if (!fresh) {
      const cached = this.links.get(path);
      this.cacheStats.link[cached === undefined ? 'misses' : 'hits']++;
      if (cached !== undefined) return cached || undefined;
      const pending = this.linkReads.get(path);
      if (pending) return pending;
    }
    const read = (async () => {
      try {
        return (await this.driver.getContent(path)).toString('utf8').trim();
      } catch (e) {
        if (!isNotFound(e)) throw e;
        return '';
      }
    })();
    this.linkReads.set(path, read);
    try {
      const target = await read;
      // A write or delete since this read began has superseded it.
      if (this.linkReads.get(path) === read) this.links.set(path, target);
      return target || undefined;
    } finally {
      if (this.linkReads.get(path) === read) this.linkReads.delete(path);
    }
  }

  /** What this process just wrote (or '' for removed): reads in flight must not overwrite it. */
  private setLink(path: string, target: string): void {
    this.linkReads.delete(path);
    this.links.set(path, target);
  }

  /**
   * Make the link point at d; true when it had to be written. `touch` writes it
   * even when it is already there: a commit refreshes its link's age, which the
   * collector's final re-check reads (storage/GC.md).
   */
  private async writeLink(path: string, d: Digest, touch = false): Promise<boolean> {
    if (!touch && (await this.readLinkFresh(path)) === d.value) return false;
    await this.driver.putContent(path, Buffer.from(d.value));
    this.setLink(path, d.value);
    this.catalog = undefined; // the link may have created a repository
    return true;
  }

  private async readLinkFresh(path: string): Promise<string | undefined> {
    return this.readLink(path, true);
  }

  private async deletePath(path: string): Promise<boolean> {
    // Deletes are rare: forget every cached link under the deleted tree.
    const under = (k: string) => k === path || k.startsWith(`${path}/`);
    for (const k of this.links.keys()) if (under(k)) this.links.delete(k);
    for (const k of this.linkReads.keys()) if (under(k)) this.linkReads.delete(k);
    try {
      await this.driver.delete(path);
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  // ---- blobs -------------------------------------------------------------

  /** Does the store hold the blob right now? Bypasses the size cache (another process may have collected it). */
  private async blobExistsFresh(d: Digest): Promise<boolean> {
    try {
      this.blobSizes.set(d.value, (await this.driver.stat(paths.blobData(d))).size);
      return true;
    } catch (e) {
      if (!isNotFound(e)) throw e;
      this.blobSizes.delete(d.value);
      return false;
    }
  }

  /**
   * The writer's half of the GC protocol (storage/GC.md): once a commit's
   * writes are durable, wait out any sweep that announced one of `keys`, then
   * let `recheck` verify and restore what the commit needs. A restore is a new
   * write, so it goes round again.
   */
  private async settle(keys: string[], recheck: () => Promise<boolean>): Promise<void> {
    for (let round = 0; round < 5; round++) {
      await waitForSweeps(this.driver, keys);
      if (!(await recheck())) return;
    }
    throw err('UNAVAILABLE', 'content was being garbage-collected while it was committed; retry');
  }

  /** Size of the stored blob, or undefined if the store does not hold it. */
  async globalBlobSize(d: Digest): Promise<number | undefined> {
    const cached = this.blobSizes.get(d.value);
    this.cacheStats.blobsize[cached === undefined ? 'misses' : 'hits']++;
    if (cached !== undefined) return cached;
    return (await this.blobExistsFresh(d)) ? this.blobSizes.get(d.value) : undefined;
  }

  /** The blob as repository `repo` sees it; BLOB_UNKNOWN unless the repository links it. */
  async statBlob(repo: string, digest: string): Promise<BlobInfo> {
    checkName(repo);
    const d = parseDigest(digest);
    const linked = await this.readLink(paths.layerLink(repo, d));
    const size = linked === d.value ? await this.globalBlobSize(d) : undefined;
    if (size === undefined) {
      // A manifest is also readable as a blob of its repository.
      if (!linked && (await this.readLink(paths.revisionLink(repo, d))) === d.value) {
        const m = await this.loadManifest(d);
        return { digest: d.value, size: m.bytes.length };
      }
      throw err('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
    }
    return { digest: d.value, size };
  }

  /** Stream a blob statBlob returned: the repository's right to it is already checked. */
  async readBlob(blob: BlobInfo, start = 0, end = blob.size): Promise<Readable> {
    const cache = this.opts.blobCache;
    const cached = await cache?.read(blob.digest, blob.size, start, end);
    if (cached) return cached;
    const data = await this.driver.reader(paths.blobData(parseDigest(blob.digest)), start, end);
    // Whole-blob reads fill the cache; a range (a resumed pull) just passes through.
    return cache && start === 0 && end === blob.size ? cache.fill(blob.digest, blob.size, data) : data;
  }

  async blobRedirect(blob: BlobInfo, method: 'GET' | 'HEAD'): Promise<string | undefined> {
    if (!this.opts.redirect) return undefined;
    return this.driver.redirectURL(paths.blobData(parseDigest(blob.digest)), method);
  }

  /** Unlink a blob from a repository (the data stays until GC finds it unreferenced). */
  async deleteBlob(repo: string, digest: string): Promise<void> {
    this.checkDelete();
    checkName(repo);
    const d = parseDigest(digest);
    if (!(await this.deletePath(paths.layerLinkDir(repo, d)))) {
      throw err('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
    }
    await this.index.blobUnlinked(repo, d);
  }

  /** Link an existing blob into a repository; false when the store does not hold it. */
  async linkBlob(repo: string, d: Digest): Promise<boolean> {
    if ((await this.globalBlobSize(d)) === undefined) return false;
    const link = paths.layerLink(repo, d);
    await this.index.beforeLink(repo, d);
    await this.writeLink(link, d, true);
    let held = true;
    await this.settle([intentKey.layer(repo, d), intentKey.blob(d)], async () => {
      held = await this.blobExistsFresh(d);
      return held && (await this.writeLink(link, d));
    });
    if (held) await this.index.linked(repo);
    return held;
  }

  /**
   * Cross-repository mount. With `from`, the blob must be linked there; without
   * it, any repository accepted by `mayRead` that links it will do.
   */
  async mountBlob(repo: string, digest: string, from: string | undefined, mayRead: (name: string) => boolean): Promise<BlobInfo | undefined> {
    checkName(repo);
    const d = parseDigest(digest);
    let source: string | undefined;
    if (from !== undefined) {
      if (isValidName(from) && mayRead(from) && (await this.readLink(paths.layerLink(from, d))) === d.value) source = from;
    } else {
      source = await this.findLinkingRepository(d, mayRead);
    }
    if (source === undefined || !(await this.linkBlob(repo, d))) return undefined;
    return { digest: d.value, size: (await this.globalBlobSize(d))! };
  }

  private async findLinkingRepository(d: Digest, mayRead: (name: string) => boolean): Promise<string | undefined> {
    if ((await this.globalBlobSize(d)) === undefined) return undefined;
    // The blob's users when the index holds them all; a walk of every repository while it is rebuilt.
    const candidates = this.index.complete ? [...(await this.index.users.list(d)).repos] : await repositoryNames(this.driver, (c) => c.includes('_layers'));
    for (const name of candidates) {
      if (mayRead(name) && (await this.readLink(paths.layerLink(name, d))) === d.value) return name;
    }
    return undefined;
  }

  /**
   * Called by uploads once the data (at the upload's path, or in a direct
   * writer not yet committed) is complete and verified. The link is written
   * before the data is placed (a collector lists blobs before links, so it
   * never sees the new blob without its link), and an upload's data is kept
   * until the blob is known to have survived any sweep that was under way (it
   * is the copy to restore from).
   */
  private async commitBlob(repo: string, d: Digest, size: number, data: string | FileWriter): Promise<void> {
    const link = paths.layerLink(repo, d);
    let placed = false;
    const place = async () => {
      if (typeof data === 'string') await this.driver.move(data, paths.blobData(d));
      else {
        await data.commit().catch((e) => {
          throw removedWhileWritten(e);
        });
      }
      placed = true;
    };
    try {
      await this.index.beforeLink(repo, d);
      await this.writeLink(link, d, true);
      // Stored once: a blob someone already pushed is linked, not copied again.
      if (!(await this.blobExistsFresh(d))) await place();
      await this.settle([intentKey.layer(repo, d), intentKey.blob(d)], async () => {
        const relinked = await this.writeLink(link, d);
        if (await this.blobExistsFresh(d)) return relinked;
        if (placed) throw err('BLOB_UPLOAD_INVALID', 'the blob was removed while it was committed; upload it again');
        await place();
        return true;
      });
    } finally {
      if (!placed && typeof data !== 'string') await data.cancel().catch(() => undefined);
    }
    this.blobSizes.set(d.value, size);
    await this.index.linked(repo);
  }

  // ---- manifests ---------------------------------------------------------

  private async loadManifest(d: Digest): Promise<ManifestContent> {
    const cached = this.manifests.get(d.value);
    this.cacheStats.manifest[cached ? 'hits' : 'misses']++;
    if (cached) return cached;
    let bytes: Buffer;
    try {
      bytes = await this.driver.getContent(paths.blobData(d));
    } catch (e) {
      if (isNotFound(e)) throw err('MANIFEST_UNKNOWN', 'manifest unknown', { digest: d.value });
      throw e;
    }
    let mediaType: string;
    try {
      mediaType = parseManifest(bytes, undefined).mediaType;
    } catch {
      // Stored by another registry with a type we do not validate: serve as-is.
      const t = JSON.parse(bytes.toString('utf8'))?.mediaType;
      mediaType = typeof t === 'string' ? t : 'application/octet-stream';
    }
    const m = { digest: d.value, mediaType, bytes };
    this.manifests.set(d.value, m);
    return m;
  }

  /**
   * Resolve a tag or digest reference to a digest the repository holds. A
   * reference that is not a valid tag (and not digest-shaped) names nothing:
   * MANIFEST_UNKNOWN, as for any manifest that does not exist (only a PUT
   * calls it invalid). A malformed digest stays DIGEST_INVALID, as on blobs.
   */
  private async resolve(repo: string, reference: string): Promise<Digest> {
    checkName(repo);
    const unknown = () => err('MANIFEST_UNKNOWN', 'manifest unknown', { name: repo, reference });
    if (reference.includes(':')) {
      const d = parseDigest(reference);
      if ((await this.readLink(paths.revisionLink(repo, d))) !== d.value) throw unknown();
      return d;
    }
    if (!isValidTag(reference)) throw unknown();
    const target = await this.readLink(paths.tagCurrentLink(repo, reference));
    if (!target) throw unknown();
    return parseDigest(target);
  }

  /** The digest a tag (or digest) names in the repository; MANIFEST_UNKNOWN when it names nothing there. */
  async resolveReference(repo: string, reference: string): Promise<string> {
    return (await this.resolve(repo, reference)).value;
  }

  async getManifest(repo: string, reference: string): Promise<ManifestContent> {
    return this.loadManifest(await this.resolve(repo, reference));
  }

  /**
   * `lazy`: a pull-through cache stores a manifest before the blobs and child
   * manifests it references, which it fetches when they are asked for; they
   * are then not required in the repository. `by`: who pushes (recorded with
   * the tag's push).
   */
  async putManifest(repo: string, reference: string, bytes: Buffer, contentType: string | undefined, opts: { lazy?: boolean; by?: string } = {}): Promise<PutManifestResult> {
    checkName(repo);
    const isDigest = reference.includes(':');
    const refDigest = isDigest ? parseDigest(reference) : undefined;
    if (!isDigest) checkTag(reference);
    if (bytes.length > MAX_MANIFEST_SIZE) {
      throw err('SIZE_INVALID', `manifest exceeds ${MAX_MANIFEST_SIZE} bytes`, { size: bytes.length }, 413);
    }
    const d = parseDigest(digestOf(bytes, refDigest?.algorithm ?? 'sha256'));
    if (refDigest && refDigest.value !== d.value) {
      throw err('DIGEST_INVALID', 'manifest digest does not match the reference', { expected: reference, actual: d.value });
    }
    // A client's push is held to the strict rules; an upstream's manifest is cached as it is served.
    const parsed = parseManifest(bytes, contentType, !opts.lazy);
    // What the image uses, for the index, whether or not it is here yet.
    const refs = [...parsed.blobs, ...parsed.manifests];
    if (opts.lazy) parsed.blobs = parsed.manifests = [];
    const missingBlobs = await this.missing(parsed.blobs, (x) => this.readLink(paths.layerLink(repo, x)));
    if (missingBlobs.length) {
      throw err('MANIFEST_BLOB_UNKNOWN', 'manifest references blobs unknown to the repository', { digests: missingBlobs });
    }
    const missingChildren = await this.missing(parsed.manifests, (x) => this.readLink(paths.revisionLink(repo, x)));
    if (missingChildren.length) {
      throw err('MANIFEST_BLOB_UNKNOWN', 'index references manifests unknown to the repository', { digests: missingChildren });
    }
    await this.checkSizes([...parsed.blobs, ...parsed.manifests], [...parsed.sizes.blobs, ...parsed.sizes.manifests]);
    // Content first, then the links that make it visible.
    if ((await this.globalBlobSize(d)) === undefined) {
      await this.driver.putContent(paths.blobData(d), bytes);
      this.blobSizes.set(d.value, bytes.length);
    }
    this.manifests.set(d.value, { digest: d.value, mediaType: parsed.mediaType, bytes });
    await this.index.beforeManifest(repo, d, refs);
    await this.writeLink(paths.revisionLink(repo, d), d, true);
    if (parsed.subject) {
      await this.writeLink(paths.referrerLink(repo, parseDigest(parsed.subject.digest), d), d);
    }
    // Settle before the tag moves, so a PUT refused here leaves the tag as it was.
    await this.settleManifest(repo, undefined, d, bytes, parsed.blobs, parsed.manifests);
    let previous: string | undefined;
    if (!isDigest) {
      previous = await this.readLinkFresh(paths.tagCurrentLink(repo, reference));
      await this.tag(repo, reference, d);
      try {
        await this.settleManifest(repo, reference, d, bytes, parsed.blobs, parsed.manifests);
      } catch (e) {
        // A sweep took a blob after the first check (only possible with a min-age
        // shorter than this request): put the tag back if its old target is whole.
        if (previous && previous !== d.value && (await this.readLinkFresh(paths.revisionLink(repo, parseDigest(previous)))) === previous) {
          await this.tag(repo, reference, parseDigest(previous));
        }
        throw e;
      }
    }
    await this.index.manifestStored(repo, d, refs, isDigest ? undefined : { tag: reference, previous, by: opts.by });
    return { digest: d.value, subject: parsed.subject?.digest };
  }

  /**
   * Re-check, fresh from the store, everything a manifest PUT relied on (its
   * content, revision, tag, the repository's links to its blobs and child
   * manifests), restoring links a concurrent GC sweep removed. Blobs cannot be
   * restored from here: if one is gone the PUT fails.
   */
  private async settleManifest(repo: string, tag: string | undefined, d: Digest, bytes: Buffer, blobs: Digest[], children: Digest[]): Promise<void> {
    const keys = [intentKey.revision(repo, d), intentKey.blob(d)];
    if (tag) keys.push(intentKey.tag(repo, tag));
    for (const b of blobs) keys.push(intentKey.layer(repo, b), intentKey.blob(b));
    for (const c of children) keys.push(intentKey.revision(repo, c), intentKey.blob(c));
    const relink = async (link: string, x: Digest) => {
      if (!(await this.blobExistsFresh(x))) {
        throw err('MANIFEST_BLOB_UNKNOWN', 'a referenced blob was removed while the manifest was stored', { digest: x.value });
      }
      return this.writeLink(link, x);
    };
    await this.settle(keys, async () => {
      let restored = false;
      if (!(await this.blobExistsFresh(d))) {
        await this.driver.putContent(paths.blobData(d), bytes);
        restored = true;
      }
      if (await this.writeLink(paths.revisionLink(repo, d), d)) restored = true;
      if (tag && (await this.readLinkFresh(paths.tagCurrentLink(repo, tag))) === undefined) {
        await this.tag(repo, tag, d);
        restored = true;
      }
      const again = await Promise.all([
        ...blobs.map((b) => relink(paths.layerLink(repo, b), b)),
        ...children.map((c) => relink(paths.revisionLink(repo, c), c)),
      ]);
      return restored || again.some(Boolean);
    });
  }

  /** A descriptor must give the size of what it names (a client trusts it to allocate and verify); cached sizes make this cheap. */
  private async checkSizes(digests: Digest[], declared: number[]): Promise<void> {
    const stored = await Promise.all(digests.map((d) => this.globalBlobSize(d)));
    const gone = digests.filter((_, i) => stored[i] === undefined).map((d) => d.value);
    if (gone.length) throw err('MANIFEST_BLOB_UNKNOWN', 'manifest references content the registry no longer holds', { digests: gone });
    const wrong = digests.flatMap((d, i) => (stored[i] === declared[i] ? [] : [{ digest: d.value, size: declared[i], stored: stored[i] }]));
    if (wrong.length) throw err('MANIFEST_INVALID', 'descriptor sizes differ from the content they name', { descriptors: wrong });
  }

  private async missing(digests: Digest[], link: (d: Digest) => Promise<string | undefined>): Promise<string[]> {
    const seen = new Set<string>();
    const out: string[] = [];
    await Promise.all(
      digests.map(async (x) => {
        if (seen.has(x.value)) return;
        seen.add(x.value);
        if ((await link(x)) !== x.value) out.push(x.value);
      }),
    );
    return out;
  }

  private async tag(repo: string, tag: string, d: Digest): Promise<void> {
    await this.index.beforeTag(repo, tag, d);
    await this.writeLink(paths.tagIndexLink(repo, tag, d), d);
    await this.driver.putContent(paths.tagCurrentLink(repo, tag), Buffer.from(d.value));
    this.setLink(paths.tagCurrentLink(repo, tag), d.value);
  }

  /** By tag: remove the tag only. By digest: remove the manifest and every tag pointing at it. */
  async deleteManifest(repo: string, reference: string): Promise<void> {
    this.checkDelete();
    const d = await this.resolve(repo, reference);
    if (!reference.includes(':')) {
      await this.deletePath(paths.tagDir(repo, reference));
      await this.index.tagDeleted(repo, reference, d);
      return;
    }
    const tags = await this.tagsPointingAt(repo, d);
    for (const tag of tags) await this.deletePath(paths.tagDir(repo, tag));
    const m = await this.describer.describe(d.value);
    await this.deletePath(paths.revisionDir(repo, d));
    if (m?.subject) await this.deletePath(paths.referrerLink(repo, parseDigest(m.subject), d).replace(/\/link$/, ''));
    await this.index.manifestDeleted(repo, d, m ? references(m) : [], tags);
  }

  /** Tags whose current link is d: from the tag markers, or every tag while the index is rebuilt. */
  async tagsPointingAt(repo: string, d: Digest): Promise<string[]> {
    const candidates = this.index.complete ? await this.index.tags.markedTags(repo, d) : await listOrEmpty(this.driver, paths.tagsRoot(repo));
    const out: string[] = [];
    for (const tag of candidates) if ((await this.readLinkFresh(paths.tagCurrentLink(repo, tag))) === d.value) out.push(tag);
    return out;
  }

  /**
   * Remove a repository: its tags, manifests and links (blobs stay until GC
   * finds no other repository uses them).
   */
  async deleteRepository(repo: string): Promise<RepositoryRemoval> {
    this.checkDelete();
    checkName(repo);
    if (!(await this.repositoryExists(repo))) throw err('NAME_UNKNOWN', 'repository name not known to registry', { name: repo });
    const [tags, revisions, layers] = await Promise.all([
      listOrEmpty(this.driver, paths.tagsRoot(repo)),
      listDigests(this.driver, paths.revisionsRoot(repo)),
      listDigests(this.driver, paths.layersRoot(repo)),
    ]);
    const images = await mapLimit(revisions, 16, async (r) => {
      const m = await this.describer.describe(r);
      return { digest: parseDigest(r), references: m ? references(m) : [] };
    });
    await this.deletePath(paths.repository(repo));
    await this.index.repositoryDeleted(repo, [...layers, ...revisions].map(parseDigest), images);
    return { repository: repo, tags: tags.length, manifests: revisions.length };
  }

  private checkDelete(): void {
    if (!this.opts.deleteEnabled) throw err('UNSUPPORTED', 'deletes are disabled on this registry');
  }

  // ---- listings ----------------------------------------------------------

  async listTags(repo: string, last: string | undefined, n: number): Promise<Page<string>> {
    checkName(repo);
    const items: string[] = [];
    let after = last;
    for (;;) {
      let page;
      try {
        page = await this.driver.listPage(paths.tagsRoot(repo), after, n - items.length);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        if (!(await this.repositoryExists(repo))) throw err('NAME_UNKNOWN', 'repository name not known to registry', { name: repo });
        return { items };
      }
      // A tag directory without current/link is a tag write a crash cut short: not a tag.
      // Cached links are checked synchronously: a page of hundreds of tags costs no I/O when warm.
      const links = page.names.map((t) => paths.tagCurrentLink(repo, t));
      const cached = links.map((p) => this.links.get(p));
      const missing = links.filter((_, i) => cached[i] === undefined);
      const read = new Map(await mapLimit(missing, 32, async (p) => [p, await this.readLink(p)] as const));
      page.names.forEach((t, i) => (cached[i] ?? read.get(links[i])) && items.push(t));
      if (!page.next) return { items };
      if (items.length >= n) return { items, last: items[items.length - 1] };
      after = page.next;
    }
  }

  /** Every tag of the repository and the digest it points at (tag directories without a link are skipped). */
  async allTags(repo: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    let last: string | undefined;
    do {
      const page = await this.listTags(repo, last, 1000).catch((e) => {
        if (e instanceof RegistryError && e.code === 'NAME_UNKNOWN') return { items: [] as string[], last: undefined };
        throw e;
      });
      const links = await mapLimit(page.items, 32, (t) => this.readLink(paths.tagCurrentLink(repo, t)));
      page.items.forEach((t, i) => links[i] && out.set(t, links[i]!));
      last = page.last;
    } while (last);
    return out;
  }

  /** A small blob's bytes (manifests, configs); undefined when the store does not hold it or it is larger than a manifest may be. */
  async blobBytes(digest: string): Promise<Buffer | undefined> {
    const d = parseDigest(digest);
    const cached = this.manifests.get(d.value);
    if (cached) return cached.bytes;
    const size = await this.globalBlobSize(d);
    if (size === undefined || size > MAX_MANIFEST_SIZE) return undefined;
    try {
      return await this.driver.getContent(paths.blobData(d));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async repositoryExists(repo: string): Promise<boolean> {
    return isRepository(await listOrEmpty(this.driver, paths.repository(repo)));
  }

  /** Referrers of a manifest: descriptors of the manifests whose subject it is. */
  async referrers(repo: string, digest: string, artifactType?: string): Promise<Descriptor[]> {
    checkName(repo);
    const subject = parseDigest(digest);
    const out: Descriptor[] = [];
    for (const alg of await listOrEmpty(this.driver, paths.referrersDir(repo, subject))) {
      for (const hex of await listOrEmpty(this.driver, `${paths.referrersDir(repo, subject)}/${alg}`)) {
        let d: Digest;
        try {
          d = parseDigest(`${alg}:${hex}`);
        } catch {
          continue;
        }
        if ((await this.readLink(paths.revisionLink(repo, d))) !== d.value) continue;
        const m = await this.loadManifest(d);
        let parsed;
        try {
          parsed = parseManifest(m.bytes, undefined);
        } catch {
          continue;
        }
        if (artifactType && parsed.artifactType !== artifactType) continue;
        const desc: Descriptor = { mediaType: m.mediaType, digest: d.value, size: m.bytes.length };
        if (parsed.artifactType) desc.artifactType = parsed.artifactType;
        if (parsed.annotations) desc.annotations = parsed.annotations;
        out.push(desc);
      }
    }
    return out;
  }

  /** Every repository, sorted; cached briefly for paging. */
  async allRepositories(fresh = false): Promise<string[]> {
    const now = Date.now();
    if (!fresh && this.catalog && now - this.catalog.at < CATALOG_TTL_MS) return this.catalog.names;
    const names = repositoryNames(this.driver);
    this.catalog = { at: now, names };
    names.catch(() => (this.catalog = undefined));
    return names;
  }

  async catalogPage(last: string | undefined, n: number, mayList: (name: string) => boolean): Promise<Page<string>> {
    if (this.index.state === 'ready') {
      const page = this.index.table.catalogPage(last, n, mayList);
      return page.more ? { items: page.items, last: page.items[page.items.length - 1] } : { items: page.items };
    }
    // Until the index has loaded: the store's own listing, cached briefly for paging.
    const all = (await this.allRepositories()).filter(mayList);
    let start = 0;
    if (last !== undefined) {
      while (start < all.length && all[start] <= last) start++;
    }
    const items = all.slice(start, start + n);
    return start + n < all.length ? { items, last: items[items.length - 1] } : { items };
  }
}
