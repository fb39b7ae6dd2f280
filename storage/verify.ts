// Integrity check: re-hash every blob against its digest, then check every
// tag, manifest revision and layer link of every repository, and report what is
// corrupt or missing by repository and image. With repair, what is provably
// broken goes: blobs whose content does not hash to their name, and links
// (tags, revisions, layer links) that point at content the store does not hold;
// a blob an image needs that is back in the store (and verifies) is linked
// again. What only a client can restore is listed as images to push again.
import { newHash, parseDigest, type Algorithm } from './digest';
import { isNotFound, type StorageDriver } from './driver';
import { blobSizes } from './du';
import { paths } from './paths';
import { forEachLimit } from './pool';
import { blobDataPath, blobDirPath, listRepositories, RefsCache, scanRepository } from './scan';

export type ProblemKind =
  | 'corrupt-blob' // content does not match its digest
  | 'missing-blob' // an image references a blob the store does not hold
  | 'unlinked-blob' // an image references a blob its repository does not link
  | 'missing-manifest' // a revision or tag points at a manifest the store does not hold
  | 'invalid-manifest' // stored manifest content does not parse
  | 'missing-child' // an index references a manifest its repository does not hold
  | 'dangling-link'; // a layer link to a blob the store does not hold

export interface Problem {
  kind: ProblemKind;
  repository?: string;
  /** "repo:tag" (or "repo@digest" when untagged) of the image affected. */
  image?: string;
  digest: string;
  detail: string;
  repaired?: boolean;
  /** What --repair did about it. */
  action?: 'removed' | 'relinked';
}

export interface VerifyOptions {
  repair?: boolean;
  concurrency?: number;
  /**
   * Repositories of a pull-through cache: they hold manifests before the
   * blobs and child manifests those reference (fetched when asked for), so
   * missing ones are not problems there.
   */
  lazy?: (repo: string) => boolean;
  /** Links younger than this are not repaired: a commit in progress writes its link just before its data. */
  graceMs?: number;
  /** unit: what done and total count ('bytes', or items such as 'repositories'). */
  onProgress?: (phase: string, done: number, total: number, unit: string) => void;
}

export interface VerifyReport {
  blobs: number;
  bytesHashed: number;
  repositories: number;
  manifests: number;
  problems: Problem[];
  repaired: number;
  /** Images whose content the store no longer holds in full: only pushing them again repairs them. */
  repush: { image: string; reasons: string[] }[];
  ms: number;
}

async function hashOf(driver: StorageDriver, digest: string): Promise<string | undefined> {
  const algorithm = digest.slice(0, digest.indexOf(':')) as Algorithm;
  const h = newHash(algorithm);
  try {
    for await (const chunk of await driver.reader(blobDataPath(digest), 0)) h.update(chunk as Buffer);
  } catch (e) {
    if (isNotFound(e)) return undefined; // removed meanwhile (GC)
    throw e;
  }
  return `${algorithm}:${h.digest('hex')}`;
}

export async function verifyStore(driver: StorageDriver, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const started = Date.now();
  const conc = opts.concurrency ?? 8;
  const grace = opts.graceMs ?? 60_000;
  const problems: Problem[] = [];
  const report: VerifyReport = { blobs: 0, bytesHashed: 0, repositories: 0, manifests: 0, problems, repaired: 0, repush: [], ms: 0 };
  // A link younger than the grace period may belong to a commit in progress
  // (links are written just before their data): neither reported nor repaired.
  const recent = async (path: string) => {
    try {
      return Date.now() - (await driver.stat(path)).modTime.getTime() < grace;
    } catch (e) {
      if (isNotFound(e)) return true; // gone meanwhile: nothing to report
      throw e;
    }
  };
  const remove = async (path: string, p: Problem) => {
    problems.push(p);
    if (!opts.repair) return;
    await driver.delete(path).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
    p.repaired = true;
    p.action = 'removed';
    report.repaired++;
  };

  // 1. Every blob, re-hashed (CPU and I/O bound: modest parallelism).
  const sizes = await blobSizes(driver);
  const total = [...sizes.values()].reduce((a, b) => a + b, 0);
  const corrupt = new Set<string>();
  const gone = new Set<string>();
  await forEachLimit([...sizes.keys()], Math.min(conc, 4), async (d) => {
    const actual = await hashOf(driver, d);
    report.blobs++;
    report.bytesHashed += sizes.get(d)!;
    opts.onProgress?.('hash', report.bytesHashed, total, 'bytes');
    if (actual === undefined) {
      gone.add(d);
    } else if (actual !== d) {
      corrupt.add(d);
      // Content that does not match its name can never be served correctly.
      await remove(blobDirPath(d), { kind: 'corrupt-blob', digest: d, detail: `content hashes to ${actual}` });
    }
  });
  const held = (d: string) => sizes.has(d) && !corrupt.has(d) && !gone.has(d);

  // 2. Every repository's tags, revisions and links.
  const repos = await listRepositories(driver);
  report.repositories = repos.length;
  const refs = new RefsCache(driver);
  let done = 0;
  await forEachLimit(repos, Math.max(1, conc >> 2), async (repo) => {
    const s = await scanRepository(driver, repo, conc);
    const lazy = opts.lazy?.(repo) ?? false;
    // A blob this repository's images need, held and verified, but not linked (e.g. restored after
    // a repair removed its link): linking it again is what a push of it would do.
    const relinked = new Map<string, Promise<void>>();
    const relink = async (b: string, p: Problem) => {
      problems.push(p);
      if (!opts.repair) return;
      if (!relinked.has(b)) relinked.set(b, driver.putContent(paths.layerLink(repo, parseDigest(b)), Buffer.from(b)));
      await relinked.get(b);
      p.repaired = true;
      p.action = 'relinked';
      report.repaired++;
    };
    const names = new Map<string, string[]>();
    for (const [t, d] of s.tags) names.set(d, [...(names.get(d) ?? []), t]);
    const image = (d: string) => (names.has(d) ? names.get(d)!.map((t) => `${repo}:${t}`).join(', ') : `${repo}@${d}`);
    for (const [t, d] of s.tags) {
      if (s.revisions.has(d) || (await recent(paths.tagCurrentLink(repo, t)))) continue;
      await remove(paths.tagDir(repo, t), { kind: 'missing-manifest', repository: repo, image: `${repo}:${t}`, digest: d, detail: 'tag points at a manifest the repository does not hold' });
    }
    await forEachLimit([...s.revisions], conc, async (d) => {
      report.manifests++;
      const dd = parseDigest(d);
      if (!held(d)) {
        if (await recent(paths.revisionLink(repo, dd))) return;
        const kind = corrupt.has(d) ? 'corrupt-blob' : 'missing-manifest';
        await remove(paths.revisionDir(repo, dd), { kind, repository: repo, image: image(d), digest: d, detail: 'manifest content is missing or corrupt' });
        return;
      }
      const r = await refs.get(d);
      if (!r) return; // removed meanwhile
      // Content of a type berth does not validate (schema 1 from distribution) is
      // checked through the digests it mentions; with none, it is not a manifest.
      if (r.unparsable && !r.blobs.length) {
        problems.push({ kind: 'invalid-manifest', repository: repo, image: image(d), digest: d, detail: 'stored content is not a manifest berth understands' });
        return;
      }
      for (const b of r.blobs) {
        if (lazy && !corrupt.has(b) && !s.layers.has(b)) continue;
        if (!held(b)) {
          problems.push({ kind: corrupt.has(b) ? 'corrupt-blob' : 'missing-blob', repository: repo, image: image(d), digest: b, detail: corrupt.has(b) ? 'layer or config is corrupt' : 'layer or config is missing from the store' });
        } else if (!s.layers.has(b)) {
          await relink(b, { kind: 'unlinked-blob', repository: repo, image: image(d), digest: b, detail: 'the repository does not link this layer or config' });
        }
      }
      for (const c of r.children) {
        if (!s.revisions.has(c) && !lazy) problems.push({ kind: 'missing-child', repository: repo, image: image(d), digest: c, detail: 'index child is not in the repository' });
      }
    });
    await forEachLimit([...s.layers], conc, async (d) => {
      const dd = parseDigest(d);
      // A link to a corrupt blob is dangling once repair has removed the blob.
      if (held(d) || (corrupt.has(d) && !opts.repair) || (await recent(paths.layerLink(repo, dd)))) return;
      await remove(paths.layerLinkDir(repo, dd), { kind: 'dangling-link', repository: repo, digest: d, detail: 'layer link to a blob the store does not hold' });
    });
    opts.onProgress?.('repositories', ++done, repos.length, 'repositories');
  });
  report.repush = needsPush(problems);
  problems.sort((a, b) => (a.repository ?? '').localeCompare(b.repository ?? '') || (a.image ?? '').localeCompare(b.image ?? '') || a.digest.localeCompare(b.digest));
  report.ms = Date.now() - started;
  return report;
}

/** Problems only a client can repair, by image: its content is gone or was never whole. */
function needsPush(problems: Problem[]): VerifyReport['repush'] {
  const what: Partial<Record<ProblemKind, string>> = {
    'corrupt-blob': 'corrupt',
    'missing-blob': 'missing',
    'missing-manifest': 'manifest missing',
    'invalid-manifest': 'manifest unreadable',
    'missing-child': 'index child missing',
  };
  const byImage = new Map<string, string[]>();
  for (const p of problems) {
    if (!p.image || !what[p.kind]) continue;
    const reason = `${p.digest} ${what[p.kind]}`;
    const list = byImage.get(p.image) ?? [];
    if (!list.includes(reason)) list.push(reason);
    byImage.set(p.image, list);
  }
  return [...byImage].sort(([a], [b]) => a.localeCompare(b)).map(([image, reasons]) => ({ image, reasons }));
}
