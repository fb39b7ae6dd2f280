// Cached content is garbage like any other. Before each scheduled GC run, under
// its lease, images of a cache not pulled for its `expire` are removed (their
// tags and manifest revisions), and while the blobs a cache holds exceed its
// `maxsize` the least recently pulled images go too. The collection that
// follows removes the layer links and blobs nothing references any more. The
// removals follow the collector's protocol (storage/GC.md): a sweep intent
// first, so a pull caching the same image meanwhile restores what it needs.
import { isNotFound, type StorageDriver } from '../storage/driver';
import { parseDigest } from '../storage/digest';
import type { SweptRepository } from '../storage/index/index';
import { intentKey, SweepIntent } from '../storage/lease';
import { paths } from '../storage/paths';
import { forEachLimit } from '../storage/pool';
import { listRepositories, readLinkFile, scanRepository } from '../storage/scan';
import { inPrefix } from '../server/config';
import type { Entry } from './entries';
import { foldPulls, pullKey } from './pulls';

export interface ExpiryOptions {
  holder: string;
  concurrency: number;
  /** How long the removals may take (the GC's sweep budget). */
  sweepBudgetMs: number;
  now?: number;
  /** What was removed, per repository, before the collection runs (the index's markers follow). */
  onSwept?: (repos: SweptRepository[]) => Promise<void>;
}

export interface ExpiryReport {
  /** Images (manifest revisions) removed, by why. */
  expired: number;
  overCap: number;
  tags: number;
  /** Bytes of blobs no remaining image of their cache uses (the next collection frees those nobody else uses). */
  bytes: number;
}

interface Image {
  repo: string;
  digest: string;
  tags: string[];
  lastPull: number;
  /** Blobs of the image the repository holds, with their sizes. */
  blobs: Map<string, number>;
}

function owner(entries: Entry[], repo: string): Entry | undefined {
  return entries.find((e) => inPrefix(e.prefix, repo));
}

/** Blobs an image manifest names (config and layers) with their sizes; none for an index. */
function blobsOf(bytes: Buffer): [string, number][] {
  try {
    const m = JSON.parse(bytes.toString('utf8')) as { config?: { digest: string; size: number }; layers?: { digest: string; size: number }[] };
    return [m.config, ...(m.layers ?? [])].filter((d): d is { digest: string; size: number } => typeof d?.digest === 'string' && typeof d.size === 'number').map((d) => [d.digest, d.size]);
  } catch {
    return [];
  }
}

async function readImages(driver: StorageDriver, entries: Entry[], concurrency: number): Promise<Map<Entry, Image[]>> {
  const out = new Map<Entry, Image[]>(entries.map((e) => [e, []]));
  const repos = (await listRepositories(driver)).filter((r) => owner(entries, r));
  await forEachLimit(repos, concurrency, async (repo) => {
    const state = await scanRepository(driver, repo, concurrency);
    const images = out.get(owner(entries, repo)!)!;
    await forEachLimit(state.revisions, concurrency, async (digest) => {
      let bytes: Buffer;
      let cachedAt: number;
      try {
        bytes = await driver.getContent(paths.blobData(parseDigest(digest)));
        cachedAt = (await driver.stat(paths.revisionLink(repo, parseDigest(digest)))).modTime.getTime();
      } catch (e) {
        if (isNotFound(e)) return;
        throw e;
      }
      const tags = [...state.tags].filter(([, d]) => d === digest).map(([t]) => t);
      const blobs = new Map(blobsOf(bytes).filter(([d]) => state.layers.has(d)));
      images.push({ repo, digest, tags, lastPull: cachedAt, blobs });
    });
  });
  return out;
}

/** Which images of one cache go: not pulled since `expire`, then the least recently pulled while over `maxsize`. */
function choose(entry: Entry, images: Image[], now: number): { expired: Image[]; overCap: Image[]; bytes: number } {
  images.sort((a, b) => a.lastPull - b.lastPull);
  const expired = entry.expire > 0 ? images.filter((i) => i.lastPull < now - entry.expire) : [];
  const gone = new Set(expired);
  const users = new Map<string, number>();
  const sizes = new Map<string, number>();
  let total = 0;
  for (const i of images) {
    if (gone.has(i)) continue;
    for (const [d, size] of i.blobs) {
      users.set(d, (users.get(d) ?? 0) + 1);
      if (!sizes.has(d)) total += size;
      sizes.set(d, size);
    }
  }
  const overCap: Image[] = [];
  for (const i of images) {
    if (!entry.maxsize || total <= entry.maxsize) break;
    if (gone.has(i)) continue;
    overCap.push(i);
    gone.add(i);
    for (const d of i.blobs.keys()) {
      const n = users.get(d)! - 1;
      users.set(d, n);
      if (n === 0) total -= sizes.get(d)!;
    }
  }
  const kept = new Set(images.filter((i) => !gone.has(i)).flatMap((i) => [...i.blobs.keys()]));
  const freed = new Map<string, number>();
  for (const i of gone) for (const [d, size] of i.blobs) if (!kept.has(d)) freed.set(d, size);
  return { expired, overCap, bytes: [...freed.values()].reduce((a, b) => a + b, 0) };
}

export async function expireCaches(driver: StorageDriver, entries: Entry[], opts: ExpiryOptions): Promise<ExpiryReport> {
  const report: ExpiryReport = { expired: 0, overCap: 0, tags: 0, bytes: 0 };
  const active = entries.filter((e) => e.expire > 0 || e.maxsize > 0);
  if (!active.length) return report;
  const now = opts.now ?? Date.now();
  const byEntry = await readImages(driver, active, opts.concurrency);
  const all = [...byEntry.values()].flat();
  const cached = new Set(all.map((i) => pullKey(i.repo, i.digest)));
  const pulls = await foldPulls(driver, (k) => cached.has(k));
  for (const i of all) i.lastPull = Math.max(i.lastPull, pulls.get(pullKey(i.repo, i.digest)) ?? 0);
  const doomed: Image[] = [];
  for (const [entry, images] of byEntry) {
    const c = choose(entry, images, now);
    doomed.push(...c.expired, ...c.overCap);
    report.expired += c.expired.length;
    report.overCap += c.overCap.length;
    report.bytes += c.bytes;
  }
  if (!doomed.length) return report;
  const keys = doomed.flatMap((i) => [intentKey.revision(i.repo, i.digest), ...i.tags.map((t) => intentKey.tag(i.repo, t))]);
  const intent = await SweepIntent.announce(driver, opts.holder, keys, opts.sweepBudgetMs);
  const swept = new Map<string, SweptRepository>();
  try {
    await forEachLimit(doomed, opts.concurrency, async (i) => {
      if (!intent.open) return;
      const r = swept.get(i.repo) ?? swept.set(i.repo, { repo: i.repo, tags: [], revisions: [], layers: [] }).get(i.repo)!;
      for (const tag of i.tags) {
        // A tag moved meanwhile (a pull refreshed it) now names another image: leave it.
        if ((await readLinkFile(driver, paths.tagCurrentLink(i.repo, tag))) !== i.digest) continue;
        await remove(driver, paths.tagDir(i.repo, tag));
        r.tags.push([tag, i.digest]);
        report.tags++;
      }
      await remove(driver, paths.revisionDir(i.repo, parseDigest(i.digest)));
      r.revisions.push(i.digest);
    });
    if (swept.size) await opts.onSwept?.([...swept.values()]);
  } finally {
    await intent.close();
  }
  return report;
}

async function remove(driver: StorageDriver, path: string): Promise<void> {
  await driver.delete(path).catch((e) => {
    if (!isNotFound(e)) throw e;
  });
}
