// Listings: a repository's tags, its referrers, the catalog. Pages cost
// their own size: the catalog comes from the repository table
// (storage/index/), tags from one directory listing.
import { LRUCache } from 'lru-cache';
import type { Digest } from './digest';
import { parseDigest } from './digest';
import { isNotFound, type StorageDriver } from './driver';
import { err, RegistryError } from './errors';
import type { StoreIndex } from './index/index';
import { entryBytes, type Links } from './links';
import { parseManifest, type Descriptor } from './manifest';
import type { Manifests } from './manifests';
import { checkName } from './names';
import { paths } from './paths';
import { mapLimit } from './pool';
import { isRepository, listOrEmpty, repositoryNames } from './repositories';

export interface Page<T> {
  items: T[];
  /** More items follow this one when set. */
  last?: string;
}

const CATALOG_TTL_MS = 2000;
/** Byte bounds of the caches below (README, Memory). */
const TAG_PAGES_BYTES = 4 * 1024 * 1024;
const COMPLETE_TAGS_BYTES = 2 * 1024 * 1024;

export class Listings {
  private catalog?: { at: number; names: Promise<string[]> };
  /**
   * Tag list pages by repository, `n` and `last`, kept as briefly as links: clients
   * listing one repository at once (8 of them, 500 tags) share one listing instead
   * of each reading the tags directory. Tag writes and deletes here drop them.
   */
  private readonly tagPages: LRUCache<string, Page<string>>;
  private readonly tagPageReads = new Map<string, Promise<Page<string>>>();
  /**
   * Tag current-links seen present, for listings only (which need no target): a tag
   * directory stays complete until a delete removes it, and then the listing no
   * longer shows it. Without this a list of 500 tags re-read 500 links each time
   * their 1 s link-cache entries had expired.
   */
  private readonly completeTags = new LRUCache<string, true>({ maxSize: COMPLETE_TAGS_BYTES, sizeCalculation: entryBytes });

  constructor(
    private readonly driver: StorageDriver,
    private readonly links: Links,
    private readonly manifests: Manifests,
    private readonly index: StoreIndex,
    ttlMs: number,
  ) {
    this.tagPages = new LRUCache<string, Page<string>>({
      maxSize: TAG_PAGES_BYTES,
      sizeCalculation: (p, k) => k.length + 128 + p.items.reduce((n, t) => n + t.length + 16, 0),
      ttl: Math.max(1, ttlMs),
    });
  }

  /**
   * Tags of the repository were written or deleted by this process (all of
   * them: the repository was deleted). Only those tags stop being known
   * complete: a write leaves the others as they were, and forgetting them all
   * made every list after a push re-read every tag's link (under a stream of
   * pushes, each list read them all).
   */
  forgetTags(repo: string, tags?: string[]): void {
    const prefix = `${repo}\n`;
    for (const k of this.tagPages.keys()) if (k.startsWith(prefix)) this.tagPages.delete(k);
    for (const k of this.tagPageReads.keys()) if (k.startsWith(prefix)) this.tagPageReads.delete(k);
    if (tags) {
      for (const t of tags) this.completeTags.delete(paths.tagCurrentLink(repo, t));
      return;
    }
    const dir = `${paths.tagsRoot(repo)}/`;
    for (const k of this.completeTags.keys()) if (k.startsWith(dir)) this.completeTags.delete(k);
  }

  /** A link was written: the store's listing may have a new repository. */
  forgetCatalog(): void {
    this.catalog = undefined;
  }

  async listTags(repo: string, last: string | undefined, n: number): Promise<Page<string>> {
    checkName(repo);
    const key = `${repo}\n${n}\n${last ?? ''}`;
    const cached = this.tagPages.get(key) ?? this.tagPageReads.get(key);
    if (cached) return cached;
    const read = this.readTagPage(repo, last, n);
    this.tagPageReads.set(key, read);
    try {
      const page = await read;
      // A tag write or delete since this read began has superseded it.
      if (this.tagPageReads.get(key) === read) this.tagPages.set(key, page);
      return page;
    } finally {
      if (this.tagPageReads.get(key) === read) this.tagPageReads.delete(key);
    }
  }

  private async readTagPage(repo: string, last: string | undefined, n: number): Promise<Page<string>> {
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
      // Tags seen complete are checked synchronously: a page of hundreds of tags costs no I/O when warm.
      const links = page.names.map((t) => paths.tagCurrentLink(repo, t));
      const known = links.map((p) => this.completeTags.has(p));
      const missing = links.filter((_, i) => !known[i]);
      const found = new Set(await mapLimit(missing, 32, async (p) => ((await this.links.read(p)) ? p : '')));
      for (const p of found) if (p) this.completeTags.set(p, true);
      page.names.forEach((t, i) => (known[i] || found.has(links[i])) && items.push(t));
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
      const links = await mapLimit(page.items, 32, (t) => this.links.read(paths.tagCurrentLink(repo, t)));
      page.items.forEach((t, i) => links[i] && out.set(t, links[i]!));
      last = page.last;
    } while (last);
    return out;
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
        if ((await this.links.read(paths.revisionLink(repo, d))) !== d.value) continue;
        const m = await this.manifests.load(d);
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
