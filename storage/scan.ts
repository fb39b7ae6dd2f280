// Store-wide listings shared by gc, verify and du. Built on list() rather than
// per-key stat() so a high-latency backend (S3) answers with few requests, and
// run with bounded parallelism.
import { isDigest, parseDigest } from './digest';
import { isNotFound, type StorageDriver } from './driver';
import { parseManifest } from './manifest';
import { paths } from './paths';
import { forEachLimit, mapLimit } from './pool';
import { isRepository, listOrEmpty, repositoryNames } from './repositories';

const ALGORITHMS = ['sha256', 'sha512'];

/** Digests named by <dir>/<algorithm>/<hex> entries (revisions, layer links). */
export async function listDigests(driver: StorageDriver, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const alg of await listOrEmpty(driver, dir)) {
    if (!ALGORITHMS.includes(alg)) continue;
    for (const hex of await listOrEmpty(driver, `${dir}/${alg}`)) {
      const d = `${alg}:${hex}`;
      if (isDigest(d)) out.push(d);
    }
  }
  return out;
}

/** Every blob digest in the store (blobs/<alg>/<2hex>/<hex>). */
export async function listBlobs(driver: StorageDriver, concurrency: number, onPrefix?: (done: number, total: number) => void): Promise<string[]> {
  const prefixes: string[] = [];
  for (const alg of ALGORITHMS) {
    for (const p of await listOrEmpty(driver, `${paths.blobsRoot}/${alg}`)) prefixes.push(`${alg}/${p}`);
  }
  const out: string[] = [];
  let done = 0;
  await forEachLimit(prefixes, concurrency, async (prefix) => {
    const alg = prefix.slice(0, prefix.indexOf('/'));
    for (const hex of await listOrEmpty(driver, `${paths.blobsRoot}/${prefix}`)) {
      const d = `${alg}:${hex}`;
      if (isDigest(d)) out.push(d);
    }
    onPrefix?.(++done, prefixes.length);
  });
  return out.sort();
}

/** Repositories with any content of their own (manifests or links). */
export function listRepositories(driver: StorageDriver): Promise<string[]> {
  return repositoryNames(driver, isRepository);
}

export interface RepoState {
  name: string;
  /** tag -> digest of its current link */
  tags: Map<string, string>;
  revisions: Set<string>;
  layers: Set<string>;
}

export async function readLinkFile(driver: StorageDriver, path: string): Promise<string | undefined> {
  try {
    const target = (await driver.getContent(path)).toString('utf8').trim();
    return isDigest(target) ? target : undefined;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

export async function scanRepository(driver: StorageDriver, name: string, concurrency: number): Promise<RepoState> {
  const [tagNames, revisions, layers] = await Promise.all([
    listOrEmpty(driver, paths.tagsRoot(name)),
    listDigests(driver, paths.revisionsRoot(name)),
    listDigests(driver, paths.layersRoot(name)),
  ]);
  const targets = await mapLimit(tagNames, concurrency, (t) => readLinkFile(driver, paths.tagCurrentLink(name, t)));
  const tags = new Map<string, string>();
  tagNames.forEach((t, i) => targets[i] && tags.set(t, targets[i]!));
  return { name, tags, revisions: new Set(revisions), layers: new Set(layers) };
}

/** What a stored manifest references. */
export interface Refs {
  blobs: string[];
  children: string[];
  subject?: string;
  mediaType?: string;
  /** The manifest content could not be parsed as a manifest we know. */
  unparsable?: boolean;
}

/** Manifest references by digest, read once per run (content by digest never changes). */
export class RefsCache {
  private readonly cache = new Map<string, Promise<Refs | undefined>>();
  constructor(private readonly driver: StorageDriver) {}

  /** undefined when the store does not hold the content. */
  get(digest: string): Promise<Refs | undefined> {
    let p = this.cache.get(digest);
    if (!p) {
      p = this.load(digest);
      this.cache.set(digest, p);
      p.catch(() => this.cache.delete(digest));
    }
    return p;
  }

  private async load(digest: string): Promise<Refs | undefined> {
    let bytes: Buffer;
    try {
      bytes = await this.driver.getContent(blobDataPath(digest));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
    try {
      const m = parseManifest(bytes, undefined);
      return { blobs: m.blobs.map((b) => b.value), children: m.manifests.map((c) => c.value), subject: m.subject?.digest, mediaType: m.mediaType };
    } catch {
      // Not a type we validate (e.g. a schema 1 manifest in a store distribution
      // wrote): count every digest it mentions as a blob it needs, so nothing it
      // uses is ever collected.
      return { blobs: mentionedDigests(bytes), children: [], unparsable: true };
    }
  }
}

function mentionedDigests(bytes: Buffer): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return [];
  }
  const out = new Set<string>();
  const visit = (v: unknown): void => {
    if (typeof v === 'string') {
      if (isDigest(v)) out.add(v);
    } else if (Array.isArray(v)) {
      v.forEach(visit);
    } else if (v && typeof v === 'object') {
      Object.values(v).forEach(visit);
    }
  };
  visit(doc);
  return [...out];
}

export const blobDataPath = (digest: string) => paths.blobData(parseDigest(digest));
export const blobDirPath = (digest: string) => paths.blobDir(parseDigest(digest));
