// The content store: blobs stored once by digest, repositories that link to
// them, manifests (storage/manifests.ts), listings (storage/listings.ts) and
// the indexes behind them (storage/index/). It knows nothing of HTTP;
// failures are RegistryErrors with the spec's codes.
import { LRUCache } from 'lru-cache';
import type { Readable } from 'node:stream';
import { parseDigest, type Digest } from './digest';
import { isNotFound, type FileWriter, type StorageDriver } from './driver';
import { err } from './errors';
import { intentKey, waitForSweeps } from './lease';
import { entryBytes, Links, type CacheStats } from './links';
import { Listings, type Page } from './listings';
import { MAX_MANIFEST_SIZE, type Descriptor, type UrlPolicy } from './manifest';
import { Manifests, type ManifestContent, type PutManifestResult } from './manifests';
import { checkName, isValidName } from './names';
import { paths } from './paths';
import { mapLimit } from './pool';
import { listOrEmpty, repositoryNames } from './repositories';
import { removedWhileWritten, UploadManager } from './uploads';
import type { BlobCache } from './blobcache';
import { Describer } from './describe';
import { StoreIndex, type IndexOptions } from './index/index';
import { references } from './index/rebuild';
import { listDigests } from './scan';

export type { CacheStats, ManifestContent, Page, PutManifestResult };

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
  /** validation.manifests.urls: what URLs a manifest's layers may name; unchecked when absent. */
  layerUrls?: UrlPolicy;
}

export const defaultStoreOptions: StoreOptions = {
  deleteEnabled: false,
  redirect: true,
  linkCacheTtlMs: 1000,
  manifestCacheBytes: 8 * 1024 * 1024,
};

/** Bytes of the blob-size cache (README, Memory). */
const BLOB_SIZE_CACHE_BYTES = 1024 * 1024;

export interface BlobInfo {
  digest: string;
  size: number;
}

/** What a repository delete removed. */
export interface RepositoryRemoval {
  repository: string;
  tags: number;
  manifests: number;
}

export class ContentStore {
  readonly uploads: UploadManager;
  readonly index: StoreIndex;
  /** What stored manifests are (kind, platforms, sizes), cached by digest. */
  readonly describer: Describer;
  private readonly opts: StoreOptions;
  private readonly blobSizes = new LRUCache<string, number>({ maxSize: BLOB_SIZE_CACHE_BYTES, sizeCalculation: entryBytes });
  private readonly links: Links;
  private readonly manifests: Manifests;
  private readonly listings: Listings;
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
    this.links = new Links(driver, this.opts.linkCacheTtlMs, this.cacheStats.link, () => this.listings.forgetCatalog());
    this.describer = new Describer((d) => this.blobBytes(d));
    this.index = new StoreIndex(driver, { describe: (d) => this.describer.describe(d), repoTags: (r) => this.allTags(r) }, this.opts.index);
    this.manifests = new Manifests(
      {
        driver,
        index: this.index,
        describer: this.describer,
        stats: this.cacheStats.manifest,
        blobSize: (d) => this.globalBlobSize(d),
        blobExistsFresh: (d) => this.blobExistsFresh(d),
        rememberSize: (digest, size) => this.blobSizes.set(digest, size),
        settle: (keys, recheck) => this.settle(keys, recheck),
        checkDelete: () => this.checkDelete(),
        layerUrls: this.opts.layerUrls,
        tagsChanged: (repo, tags) => this.listings.forgetTags(repo, tags),
      },
      this.links,
      this.opts.manifestCacheBytes,
    );
    this.listings = new Listings(driver, this.links, this.manifests, this.index, this.opts.linkCacheTtlMs);
    this.uploads = new UploadManager(driver, {
      commit: (repo, d, size, data) => this.commitBlob(repo, d, size, data),
      directWriter: async (d) => (driver.atomicWriter && !(await this.blobExistsFresh(d)) ? driver.atomicWriter(paths.blobData(d)) : undefined),
    });
  }

  get deleteEnabled(): boolean {
    return this.opts.deleteEnabled;
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
    const linked = await this.links.read(paths.layerLink(repo, d));
    const size = linked === d.value ? await this.globalBlobSize(d) : undefined;
    if (size === undefined) {
      // A manifest is also readable as a blob of its repository.
      if (!linked && (await this.links.read(paths.revisionLink(repo, d))) === d.value) {
        const m = await this.manifests.load(d);
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
    if (!(await this.links.deleteTree(paths.layerLinkDir(repo, d)))) {
      throw err('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
    }
    await this.index.blobUnlinked(repo, d);
  }

  /** Link an existing blob into a repository; false when the store does not hold it. */
  async linkBlob(repo: string, d: Digest): Promise<boolean> {
    if ((await this.globalBlobSize(d)) === undefined) return false;
    const link = paths.layerLink(repo, d);
    await this.index.beforeLink(repo, d);
    await this.links.write(link, d, true);
    let held = true;
    await this.settle([intentKey.layer(repo, d), intentKey.blob(d)], async () => {
      held = await this.blobExistsFresh(d);
      return held && (await this.links.write(link, d));
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
      if (isValidName(from) && mayRead(from) && (await this.links.read(paths.layerLink(from, d))) === d.value) source = from;
    } else {
      source = await this.findLinkingRepository(d, mayRead);
    }
    if (source === undefined || !(await this.linkBlob(repo, d))) return undefined;
    return { digest: d.value, size: (await this.globalBlobSize(d))! };
  }

  private async findLinkingRepository(d: Digest, mayRead: (name: string) => boolean): Promise<string | undefined> {
    if ((await this.globalBlobSize(d)) === undefined) return undefined;
    const links = async (name: string) => mayRead(name) && (await this.links.read(paths.layerLink(name, d))) === d.value;
    // The blob's users when the index holds them all (reading only until one will do); a walk of every repository while it is rebuilt.
    if (this.index.complete) return this.index.users.find(d, links);
    for (const name of await repositoryNames(this.driver, (c) => c.includes('_layers'))) if (await links(name)) return name;
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
      await this.links.write(link, d, true);
      // Stored once: a blob someone already pushed is linked, not copied again.
      if (!(await this.blobExistsFresh(d))) await place();
      await this.settle([intentKey.layer(repo, d), intentKey.blob(d)], async () => {
        const relinked = await this.links.write(link, d);
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

  /** A small blob's bytes (manifests, configs); undefined when the store does not hold it or it is larger than a manifest may be. */
  async blobBytes(digest: string): Promise<Buffer | undefined> {
    const d = parseDigest(digest);
    const cached = this.manifests.cached(d.value);
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
    await this.links.deleteTree(paths.repository(repo));
    this.listings.forgetTags(repo);
    await this.index.repositoryDeleted(repo, [...layers, ...revisions].map(parseDigest), images);
    return { repository: repo, tags: tags.length, manifests: revisions.length };
  }

  private checkDelete(): void {
    if (!this.opts.deleteEnabled) throw err('UNSUPPORTED', 'deletes are disabled on this registry');
  }

  // ---- manifests and listings (storage/manifests.ts, storage/listings.ts) --------------------

  /** The digest a tag (or digest) names in the repository; MANIFEST_UNKNOWN when it names nothing there. */
  async resolveReference(repo: string, reference: string): Promise<string> {
    return (await this.manifests.resolve(repo, reference)).value;
  }

  getManifest(repo: string, reference: string): Promise<ManifestContent> {
    return this.manifests.get(repo, reference);
  }

  /**
   * `lazy`: a pull-through cache stores a manifest before the blobs and child
   * manifests it references. `by`: who pushes (recorded with the tag's push).
   */
  putManifest(repo: string, reference: string, bytes: Buffer, contentType: string | undefined, opts: { lazy?: boolean; by?: string } = {}): Promise<PutManifestResult> {
    return this.manifests.put(repo, reference, bytes, contentType, opts);
  }

  /** By tag: remove the tag only. By digest: remove the manifest and every tag pointing at it. */
  deleteManifest(repo: string, reference: string): Promise<void> {
    return this.manifests.delete(repo, reference);
  }

  tagsPointingAt(repo: string, d: Digest): Promise<string[]> {
    return this.manifests.tagsPointingAt(repo, d);
  }

  listTags(repo: string, last: string | undefined, n: number): Promise<Page<string>> {
    return this.listings.listTags(repo, last, n);
  }

  allTags(repo: string): Promise<Map<string, string>> {
    return this.listings.allTags(repo);
  }

  repositoryExists(repo: string): Promise<boolean> {
    return this.listings.repositoryExists(repo);
  }

  referrers(repo: string, digest: string, artifactType?: string): Promise<Descriptor[]> {
    return this.listings.referrers(repo, digest, artifactType);
  }

  catalogPage(last: string | undefined, n: number, mayList: (name: string) => boolean): Promise<Page<string>> {
    return this.listings.catalogPage(last, n, mayList);
  }
}
