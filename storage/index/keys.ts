// Where the indexes live. Everything here is derivable from distribution's
// layout (storage/index/rebuild.ts) except push records, which hold facts the
// layout cannot tell (who pushed). Store-wide keys sit under _berth/index;
// per-repository ones under repositories/<name>/_berth, which distribution's
// catalog walk skips and which goes with the repository when it is deleted.
import type { Digest } from '../digest';
import { paths } from '../paths';

const ROOT = `${paths.root}/_berth/index`;

/** A repository name as one path component: '/' is the only character of names a component cannot hold. */
export const escapeName = (name: string) => name.replaceAll('/', '+');
export const unescapeName = (s: string) => s.replaceAll('+', '/');

/** Newest first in a sorted listing: 13 digits of (10^13 - 1 - ms). */
export const newestFirst = (ms: number) => String(9_999_999_999_999 - ms).padStart(13, '0');

export const indexKeys = {
  root: ROOT,
  /** {version, builtAt}: the store-wide indexes are complete (absent: a store distribution wrote, or one older than indexes). */
  state: `${ROOT}/state`,
  /** The repository table as last written by the replica holding the index lease. */
  snapshot: `${ROOT}/snapshot`,
  lease: `${ROOT}/lease`,
  /** Store-wide usage (storage/index/usage.ts), recomputed by the lease holder. */
  usage: `${ROOT}/usage`,
  /** Change feed, one directory per minute of the writer's clock. */
  feedRoot: `${ROOT}/feed`,
  feedMinute: (minute: number) => `${ROOT}/feed/${minute}`,
  /**
   * Blob → users: `<repo>` marks a repository that links the blob (layer link
   * or manifest revision); `<repo>@<digest>` an image of that repository whose
   * config, layer or child the blob is.
   */
  blobUsers: (d: Digest) => `${ROOT}/blobs/${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}`,
  blobsRoot: `${ROOT}/blobs`,
  /** Manifest → tags of one repository: `<tag>` markers. */
  tagsOf: (repo: string, d: Digest) => `${paths.repository(repo)}/_berth/tagsof/${d.algorithm}/${d.hex}`,
  tagsOfRoot: (repo: string) => `${paths.repository(repo)}/_berth/tagsof`,
  /** One record per push of a tag, newest first: `<newestFirst(ms)>-<random>` holding {digest, at, by}. */
  pushes: (repo: string, tag: string) => `${paths.repository(repo)}/_berth/pushes/${tag}`,
  pushesRoot: (repo: string) => `${paths.repository(repo)}/_berth/pushes`,
};

/** A blob-users marker: the repository, and the image when it marks one. */
export function parseUser(entry: string): { repo: string; image?: string } {
  const at = entry.indexOf('@');
  if (at < 0) return { repo: unescapeName(entry) };
  return { repo: unescapeName(entry.slice(0, at)), image: entry.slice(at + 1) };
}

export const userEntry = (repo: string, image?: string) => (image ? `${escapeName(repo)}@${image}` : escapeName(repo));
