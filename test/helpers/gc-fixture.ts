// The GC/verify/du fixture, written through the ContentStore API so the same
// suite runs on any driver (filesystem here; S3 when its fixture is merged):
// layers shared across repositories, an index with children, referrers, an
// overwritten tag, a deleted tag, a stray layer link and an orphan blob.
import crypto from 'node:crypto';
import { parseDigest } from '../../storage/digest';
import type { StorageDriver } from '../../storage/driver';
import { paths } from '../../storage/paths';
import { ContentStore } from '../../storage/store';
import { blob, imageManifest, indexManifest, type Blob } from './registry-client';

export type DriverFactory = () => Promise<{ driver: StorageDriver; cleanup: () => Promise<void> }>;

async function* once(b: Buffer) {
  yield b;
}

export async function putBlob(store: ContentStore, repo: string, b: Blob): Promise<void> {
  const up = await store.uploads.start(repo);
  await store.uploads.complete(repo, up.id, b.digest, once(b.bytes));
}

export interface FixtureImage {
  repo: string;
  ref: string;
  digest: string;
  bytes: Buffer;
  /** config + layers, or nothing for an index */
  blobs: Blob[];
  children?: FixtureImage[];
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export async function putImage(store: ContentStore, repo: string, ref: string | undefined, blobs: Blob[], extra: Record<string, unknown> = {}): Promise<FixtureImage> {
  for (const b of blobs) await putBlob(store, repo, b);
  const bytes = imageManifest(blobs[0], blobs.slice(1), extra);
  const digest = blob(bytes).digest;
  await store.putManifest(repo, ref ?? digest, bytes, OCI_MANIFEST);
  return { repo, ref: ref ?? digest, digest, bytes, blobs };
}

const rnd = (name: string, size: number) => blob(Buffer.concat([Buffer.from(`${name}:`), crypto.randomBytes(size)]));

export interface Fixture {
  /** What a GC without --delete-untagged keeps and removes. */
  kept: FixtureImage[];
  /** Manifests only --delete-untagged removes (untagged, or referrers of untagged). */
  untagged: FixtureImage[];
  /** Blobs only the untagged manifests use (freed with --delete-untagged). */
  untaggedOnlyBlobs: Blob[];
  /** A layer link nothing references (b/app) and its blob, and a blob no repository links. */
  strayLink: { repo: string; blob: Blob };
  orphan: Blob;
  /** Tagged images (what du counts), with their repository. */
  tagged: FixtureImage[];
  allBlobs: Blob[];
}

export async function buildFixture(driver: StorageDriver): Promise<{ store: ContentStore; fixture: Fixture }> {
  const store = new ContentStore(driver, { deleteEnabled: true, linkCacheTtlMs: 1 });
  const base1 = rnd('base1', 3000);
  const base2 = rnd('base2', 2000);
  // a/app: v1 pushed, then v1 overwritten: the first image becomes untagged.
  const old = await putImage(store, 'a/app', 'v1', [rnd('cfg-old', 100), base1, base2, rnd('only-old', 1500)]);
  const cur = await putImage(store, 'a/app', 'v1', [rnd('cfg-cur', 110), base1, base2, rnd('only-cur', 1700)]);
  // A signature-like referrer of the current image (kept) and one of the old image (goes with it).
  const empty = blob('{}');
  const sig = await putImage(store, 'a/app', undefined, [empty, rnd('sig', 300)], { artifactType: 'application/example.sig', subject: { mediaType: OCI_MANIFEST, digest: cur.digest, size: cur.bytes.length } });
  const oldSig = await putImage(store, 'a/app', undefined, [empty, rnd('old-sig', 310)], { artifactType: 'application/example.sig', subject: { mediaType: OCI_MANIFEST, digest: old.digest, size: old.bytes.length } });
  // An index with two children pushed by digest.
  const amd = await putImage(store, 'a/app', undefined, [rnd('cfg-amd', 120), base1, rnd('amd', 900)]);
  const arm = await putImage(store, 'a/app', undefined, [rnd('cfg-arm', 130), base2, rnd('arm', 800)]);
  const idxBytes = indexManifest([amd, arm].map((c) => ({ digest: c.digest, size: c.bytes.length })));
  const idxDigest = blob(idxBytes).digest;
  await store.putManifest('a/app', 'multi', idxBytes, OCI_INDEX);
  const index: FixtureImage = { repo: 'a/app', ref: 'multi', digest: idxDigest, bytes: idxBytes, blobs: [], children: [amd, arm] };
  // b/app shares the base layers (mounted, as a client would) and has a layer it never used.
  for (const b of [base1, base2]) if (!(await store.linkBlob('b/app', parseDigest(b.digest)))) throw new Error('mount failed');
  const other = await putImage(store, 'b/app', 'latest', [rnd('cfg-b', 140), base1, base2, rnd('only-b', 1200)]);
  const stray = rnd('stray', 700);
  await putBlob(store, 'b/app', stray);
  // c/app: an image whose tag was deleted.
  const gone = await putImage(store, 'c/app', 'temp', [rnd('cfg-c', 150), base1, rnd('only-c', 1100)]);
  await store.deleteManifest('c/app', 'temp');
  // A blob in the store that no repository links (an interrupted commit).
  const orphan = rnd('orphan', 600);
  await driver.putContent(paths.blobData(parseDigest(orphan.digest)), orphan.bytes);

  const untaggedOnlyBlobs = [old.blobs[0], old.blobs[3], oldSig.blobs[1], gone.blobs[0], gone.blobs[2]];
  const images = [old, cur, sig, oldSig, amd, arm, other, gone];
  const allBlobs = dedupe([...images.flatMap((i) => i.blobs), stray, orphan]);
  return {
    store,
    fixture: {
      kept: [cur, sig, amd, arm, index, other],
      untagged: [old, oldSig, gone],
      untaggedOnlyBlobs,
      strayLink: { repo: 'b/app', blob: stray },
      orphan,
      tagged: [cur, index, other],
      allBlobs,
    },
  };
}

export function dedupe(blobs: Blob[]): Blob[] {
  return [...new Map(blobs.map((b) => [b.digest, b])).values()];
}

export const sumBytes = (blobs: Blob[]) => blobs.reduce((n, b) => n + b.bytes.length, 0);
