// Derive the markers (blob users, tag markers) from distribution's layout:
// on the first start over a store distribution wrote (or one older than the
// indexes), and from `berth verify --repair`. Markers the layout no longer
// backs (a crash between a marker and its link, deletes by another program)
// are removed. Push records are facts of their own and are left alone.
import { isDigest, parseDigest, type Digest } from '../digest';
import { Describer } from '../describe';
import { isNotFound, type StorageDriver } from '../driver';
import { paths } from '../paths';
import { forEachLimit } from '../pool';
import { listOrEmpty } from '../repositories';
import { listRepositories, readLinkFile, scanRepository, listDigests } from '../scan';
import { indexKeys, parseUser, userEntry } from './keys';
import { TagFacts } from './tags';
import { BlobUsers } from './users';

export interface RebuildReport {
  repositories: number;
  /** Markers written (whether or not they were there before). */
  markers: number;
  /** Markers removed because nothing in the layout backs them. */
  stale: number;
  ms: number;
}

export interface RebuildOptions {
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

async function blobBytes(driver: StorageDriver, digest: string): Promise<Buffer | undefined> {
  try {
    return await driver.getContent(paths.blobData(parseDigest(digest)));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

export async function rebuildIndexes(driver: StorageDriver, opts: RebuildOptions = {}): Promise<RebuildReport> {
  const started = Date.now();
  const conc = opts.concurrency ?? 8;
  const users = new BlobUsers(driver);
  const tags = new TagFacts(driver);
  const describer = new Describer((d) => blobBytes(driver, d));
  const repos = await listRepositories(driver);
  let markers = 0;
  let stale = 0;
  let done = 0;
  await forEachLimit(repos, Math.max(1, conc >> 1), async (repo) => {
    const state = await scanRepository(driver, repo, conc);
    await forEachLimit(state.layers, conc, async (d) => {
      await users.mark(parseDigest(d), repo);
      markers++;
    });
    await forEachLimit(state.revisions, conc, async (d) => {
      const m = await describer.describe(d);
      await users.mark(parseDigest(d), repo);
      markers++;
      for (const ref of m ? references(m) : []) {
        await users.mark(ref, repo, [d]);
        markers++;
      }
    });
    await forEachLimit(state.tags, conc, async ([tag, d]) => {
      await tags.markTag(repo, tag, parseDigest(d));
      markers++;
    });
    // Tag markers of a digest the tag no longer points at.
    for (const d of await listDigests(driver, indexKeys.tagsOfRoot(repo))) {
      for (const tag of await tags.markedTags(repo, parseDigest(d))) {
        if (state.tags.get(tag) === d) continue;
        const marker = `${indexKeys.tagsOf(repo, parseDigest(d))}/${tag}`;
        if (!(await settled(driver, marker)) || (await readLinkFile(driver, paths.tagCurrentLink(repo, tag))) === d) continue;
        await tags.unmarkTag(repo, tag, parseDigest(d));
        stale++;
      }
    }
    opts.onProgress?.(++done, repos.length);
  });
  stale += await removeStale(driver, conc);
  await driver.putContent(indexKeys.state, Buffer.from(JSON.stringify({ version: 1, builtAt: new Date().toISOString() })));
  return { repositories: repos.length, markers, stale, ms: Date.now() - started };
}

/** What an image or index needs besides itself: config, layers, children. */
export function references(m: { config?: { digest: string }; layers: { digest: string }[]; children: { digest: string }[] }): Digest[] {
  const out = new Map<string, Digest>();
  for (const x of [...(m.config ? [m.config] : []), ...m.layers, ...m.children]) out.set(x.digest, parseDigest(x.digest));
  return [...out.values()];
}

/**
 * A marker is written just before its link: one younger than this may be
 * waiting for its link, not stale.
 */
const MARKER_SETTLE_MS = 60_000;

async function settled(driver: StorageDriver, path: string): Promise<boolean> {
  try {
    return Date.now() - (await driver.stat(path)).modTime.getTime() > MARKER_SETTLE_MS;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** Remove markers whose link is gone. */
async function removeStale(driver: StorageDriver, conc: number): Promise<number> {
  let stale = 0;
  const linked = async (path: string, d: string) => (await readLinkFile(driver, path)) === d;
  for (const alg of await listOrEmpty(driver, indexKeys.blobsRoot)) {
    const prefixes = await listOrEmpty(driver, `${indexKeys.blobsRoot}/${alg}`);
    await forEachLimit(prefixes, conc, async (p) => {
      for (const hex of await listOrEmpty(driver, `${indexKeys.blobsRoot}/${alg}/${p}`)) {
        let d: Digest;
        try {
          d = parseDigest(`${alg}:${hex}`);
        } catch {
          continue;
        }
        for (const entry of await listOrEmpty(driver, indexKeys.blobUsers(d))) {
          if (!(await settled(driver, `${indexKeys.blobUsers(d)}/${entry}`))) continue;
          const u = parseUser(entry);
          const ok = u.image && !isDigest(u.image) ? false : u.image
            ? await linked(paths.revisionLink(u.repo, parseDigest(u.image)), u.image)
            : (await linked(paths.layerLink(u.repo, d), d.value)) || (await linked(paths.revisionLink(u.repo, d), d.value));
          if (!ok) {
            await driver.delete(`${indexKeys.blobUsers(d)}/${userEntry(u.repo, u.image)}`).catch(() => undefined);
            stale++;
          }
        }
      }
    });
  }
  return stale;
}
