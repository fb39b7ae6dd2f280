// Manifests of repositories: resolving tags and digests, storing a manifest
// with its revision, referrer and tag links (and the GC handshake that keeps
// them whole), deleting. Manifest content by digest never changes, so it is
// cached freely, bounded in bytes.
import { LRUCache } from 'lru-cache';
import type { Describer } from './describe';
import { digestOf, parseDigest, type Digest } from './digest';
import { isNotFound, type StorageDriver } from './driver';
import { err } from './errors';
import type { StoreIndex } from './index/index';
import { references } from './index/rebuild';
import { intentKey } from './lease';
import type { CacheStats, Links } from './links';
import { checkLayerUrls, MAX_MANIFEST_SIZE, parseManifest, type UrlPolicy } from './manifest';
import { checkName, checkTag, isValidTag } from './names';
import { paths } from './paths';
import { listOrEmpty } from './repositories';

export interface ManifestContent {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface PutManifestResult {
  digest: string;
  subject?: string;
}

/** What manifests need of the rest of the store. */
export interface ManifestStoreParts {
  driver: StorageDriver;
  index: StoreIndex;
  describer: Describer;
  stats: CacheStats;
  blobSize(d: Digest): Promise<number | undefined>;
  blobExistsFresh(d: Digest): Promise<boolean>;
  rememberSize(digest: string, size: number): void;
  /** The writer's half of the GC protocol (storage/GC.md). */
  settle(keys: string[], recheck: () => Promise<boolean>): Promise<void>;
  checkDelete(): void;
  /** validation.manifests.urls: what URLs a manifest's layers may name; unchecked when absent. */
  layerUrls?: UrlPolicy;
  /** A tag of the repository was written or deleted: listings drop what they kept of it. */
  tagsChanged(repo: string, tags: string[]): void;
}

/**
 * The bytes in a Buffer of their own. A small Buffer.concat (a manifest PUT's
 * body) is a slice of Node's shared 8 KiB pool, and a cached slice keeps the
 * whole 8 KiB alive while the cache counts only the slice: after three rounds
 * of the mixed load the cache pinned 572 such slabs (4.7 MB), and the
 * bound in bytes did not hold.
 */
function ownBytes(b: Buffer): Buffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b;
  const own = Buffer.allocUnsafeSlow(b.length);
  b.copy(own);
  return own;
}

export class Manifests {
  private readonly cache: LRUCache<string, ManifestContent>;

  constructor(
    private readonly s: ManifestStoreParts,
    private readonly links: Links,
    maxBytes: number,
  ) {
    this.cache = new LRUCache({ maxSize: maxBytes, sizeCalculation: (m) => m.bytes.length + 256 });
  }

  /** Cached content, without I/O. */
  cached(digest: string): ManifestContent | undefined {
    return this.cache.get(digest);
  }

  async load(d: Digest): Promise<ManifestContent> {
    const cached = this.cache.get(d.value);
    this.s.stats[cached ? 'hits' : 'misses']++;
    if (cached) return cached;
    let bytes: Buffer;
    try {
      bytes = await this.s.driver.getContent(paths.blobData(d));
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
    const m = { digest: d.value, mediaType, bytes: ownBytes(bytes) };
    this.cache.set(d.value, m);
    return m;
  }

  /**
   * Resolve a tag or digest reference to a digest the repository holds. A
   * reference that is not a valid tag (and not digest-shaped) names nothing:
   * MANIFEST_UNKNOWN, as for any manifest that does not exist (only a PUT
   * calls it invalid). A malformed digest stays DIGEST_INVALID, as on blobs.
   */
  async resolve(repo: string, reference: string): Promise<Digest> {
    checkName(repo);
    const unknown = () => err('MANIFEST_UNKNOWN', 'manifest unknown', { name: repo, reference });
    if (reference.includes(':')) {
      const d = parseDigest(reference);
      if ((await this.links.read(paths.revisionLink(repo, d))) !== d.value) throw unknown();
      return d;
    }
    if (!isValidTag(reference)) throw unknown();
    const target = await this.links.read(paths.tagCurrentLink(repo, reference));
    if (!target) throw unknown();
    return parseDigest(target);
  }


  async get(repo: string, reference: string): Promise<ManifestContent> {
    return this.load(await this.resolve(repo, reference));
  }

  /**
   * `lazy`: a pull-through cache stores a manifest before the blobs and child
   * manifests it references, which it fetches when they are asked for; they
   * are then not required in the repository. `by`: who pushes (recorded with
   * the tag's push).
   */
  async put(repo: string, reference: string, bytes: Buffer, contentType: string | undefined, opts: { lazy?: boolean; by?: string } = {}): Promise<PutManifestResult> {
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
    if (this.s.layerUrls && !opts.lazy) checkLayerUrls(parsed.urls, this.s.layerUrls);
    // What the image uses, for the index, whether or not it is here yet.
    const refs = [...parsed.blobs, ...parsed.manifests];
    if (opts.lazy) parsed.blobs = parsed.manifests = [];
    const missingBlobs = await this.missing(parsed.blobs, (x) => this.links.read(paths.layerLink(repo, x)));
    if (missingBlobs.length) {
      throw err('MANIFEST_BLOB_UNKNOWN', 'manifest references blobs unknown to the repository', { digests: missingBlobs });
    }
    const missingChildren = await this.missing(parsed.manifests, (x) => this.links.read(paths.revisionLink(repo, x)));
    if (missingChildren.length) {
      throw err('MANIFEST_BLOB_UNKNOWN', 'index references manifests unknown to the repository', { digests: missingChildren });
    }
    await this.checkSizes([...parsed.blobs, ...parsed.manifests], [...parsed.sizes.blobs, ...parsed.sizes.manifests]);
    // Content and the index's markers first, then the links that make it visible. The
    // first two only have to precede the links: they are written (and synced) together.
    const content = (async () => {
      if ((await this.s.blobSize(d)) === undefined) {
        await this.s.driver.putContent(paths.blobData(d), bytes);
        this.s.rememberSize(d.value, bytes.length);
      }
    })();
    await Promise.all([content, this.s.index.beforeManifest(repo, d, refs)]);
    this.cache.set(d.value, { digest: d.value, mediaType: parsed.mediaType, bytes: ownBytes(bytes) });
    await this.links.write(paths.revisionLink(repo, d), d, true);
    if (parsed.subject) {
      await this.links.write(paths.referrerLink(repo, parseDigest(parsed.subject.digest), d), d);
    }
    // Settle before the tag moves, so a PUT refused here leaves the tag as it was.
    await this.settleManifest(repo, undefined, d, bytes, parsed.blobs, parsed.manifests);
    let previous: string | undefined;
    if (!isDigest) {
      previous = await this.links.readFresh(paths.tagCurrentLink(repo, reference));
      await this.tag(repo, reference, d);
      try {
        await this.settleManifest(repo, reference, d, bytes, parsed.blobs, parsed.manifests);
      } catch (e) {
        // A sweep took a blob after the first check (only possible with a min-age
        // shorter than this request): put the tag back if its old target is whole.
        if (previous && previous !== d.value && (await this.links.readFresh(paths.revisionLink(repo, parseDigest(previous)))) === previous) {
          await this.tag(repo, reference, parseDigest(previous));
        }
        throw e;
      }
    }
    await this.s.index.manifestStored(repo, d, refs, isDigest ? undefined : { tag: reference, previous, by: opts.by });
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
      if (!(await this.s.blobExistsFresh(x))) {
        throw err('MANIFEST_BLOB_UNKNOWN', 'a referenced blob was removed while the manifest was stored', { digest: x.value });
      }
      return this.links.write(link, x);
    };
    await this.s.settle(keys, async () => {
      let restored = false;
      if (!(await this.s.blobExistsFresh(d))) {
        await this.s.driver.putContent(paths.blobData(d), bytes);
        restored = true;
      }
      if (await this.links.write(paths.revisionLink(repo, d), d)) restored = true;
      if (tag && (await this.links.readFresh(paths.tagCurrentLink(repo, tag))) === undefined) {
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
    const stored = await Promise.all(digests.map((d) => this.s.blobSize(d)));
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
    await this.s.index.beforeTag(repo, tag, d);
    await this.links.write(paths.tagIndexLink(repo, tag, d), d);
    await this.s.driver.putContent(paths.tagCurrentLink(repo, tag), Buffer.from(d.value));
    this.links.set(paths.tagCurrentLink(repo, tag), d.value);
    this.s.tagsChanged(repo, [tag]);
  }

  /** By tag: remove the tag only. By digest: remove the manifest and every tag pointing at it. */
  async delete(repo: string, reference: string): Promise<void> {
    this.s.checkDelete();
    const d = await this.resolve(repo, reference);
    if (!reference.includes(':')) {
      await this.links.deleteTree(paths.tagDir(repo, reference));
      this.s.tagsChanged(repo, [reference]);
      await this.s.index.tagDeleted(repo, reference, d);
      return;
    }
    const tags = await this.tagsPointingAt(repo, d);
    for (const tag of tags) await this.links.deleteTree(paths.tagDir(repo, tag));
    this.s.tagsChanged(repo, tags);
    const m = await this.s.describer.describe(d.value);
    await this.links.deleteTree(paths.revisionDir(repo, d));
    if (m?.subject) await this.links.deleteTree(paths.referrerLink(repo, parseDigest(m.subject), d).replace(/\/link$/, ''));
    await this.s.index.manifestDeleted(repo, d, m ? references(m) : [], tags);
  }

  /** Tags whose current link is d: from the tag markers, or every tag while the index is rebuilt. */
  async tagsPointingAt(repo: string, d: Digest): Promise<string[]> {
    const candidates = this.s.index.complete ? await this.s.index.tags.markedTags(repo, d) : await listOrEmpty(this.s.driver, paths.tagsRoot(repo));
    const out: string[] = [];
    for (const tag of candidates) if ((await this.links.readFresh(paths.tagCurrentLink(repo, tag))) === d.value) out.push(tag);
    return out;
  }
}
