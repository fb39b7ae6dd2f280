// Stores of any size written straight in CNCF distribution's v2 layout, as if
// pushed: pushing 100,000 repositories through a registry would take hours of
// fsyncs that measure nothing. Deterministic (the same shape gives the same
// bytes), streamed (a file at a time; memory holds one repository's images).
//
// Shape, meant to look like a company registry: repositories share a few base
// images (one of them used by most), most repositories have a handful of tags
// pointing at one or two images, a few have thousands; some images carry
// referrers (a signature and an SBOM) and some tags are multi-arch indexes.
// `library/big` has `bigTags` tags, the last `victims` of them each on an
// image of its own, for deletes by digest.
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { StorageDriver } from '../../storage/driver';
import { forEachLimit } from '../../storage/pool';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, imageIndex, imageManifest, sha256, type Descriptor } from './oci-client';

export interface FixtureShape {
  /** Repositories in all, the special ones included. */
  repos: number;
  /** Tags in all. */
  tags: number;
  /** Tags of BIG_REPO. */
  bigTags: number;
  /** Repositories `library/hotNN` with hotTags tags each. */
  hotRepos: number;
  hotTags: number;
  /** Images of BIG_REPO with one tag each (sorting last), to delete by digest. */
  victims: number;
  /** Base images (1 to 3 layers each) the repositories' images are built on. */
  bases: number;
  /** Tags per image (the rest of a repository's tags point at the same images). */
  tagsPerImage: number;
}

export const BIG_REPO = 'library/big';
export const EMPTY_CONFIG: Descriptor = { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 };
const REFERRER_TYPES = ['application/vnd.dev.cosign.artifact.sig.v1+json', 'application/spdx+json'];

/** 10 tags per repository on average (1,000,000 at 100,000), `library/big` with 5,000. */
export function growthShape(repos: number, over: Partial<FixtureShape> = {}): FixtureShape {
  const shape: FixtureShape = {
    repos,
    tags: repos * 10,
    bigTags: 5000,
    hotRepos: Math.floor(repos / 5000),
    hotTags: 2000,
    victims: 100,
    bases: 24,
    tagsPerImage: 10,
    ...over,
  };
  const special = 1 + shape.hotRepos;
  if (shape.repos < special + 1 || shape.tags < shape.bigTags + shape.hotRepos * shape.hotTags + (shape.repos - special)) {
    throw new Error(`fixture shape cannot hold its special repositories: ${JSON.stringify(shape)}`);
  }
  return shape;
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');
/** A uniform number in (0, 1] from a key. */
function unit(key: string): number {
  return (crypto.createHash('sha256').update(key).digest().readUInt32BE(0) + 1) / 2 ** 32;
}

/** Repository i: 0 is BIG_REPO, then the hot ones, then `teamNNN/appNNNNNN` (name order = index order). */
export function repoName(shape: FixtureShape, i: number): string {
  if (i === 0) return BIG_REPO;
  if (i <= shape.hotRepos) return `library/hot${pad(i, 2)}`;
  return `team${pad(Math.floor(i / 500), 3)}/app${pad(i, 6)}`;
}

export function tagName(k: number): string {
  return k === 0 ? 'latest' : `v${pad(k, 5)}`;
}
const victimTag = (v: number) => `zz-delete-${pad(v, 4)}`;

/** Small deterministic content (a fake layer, a signature): AES-CTR of zeros under a key from the seed. */
function content(seed: string, size: number): Buffer {
  const key = crypto.createHash('sha256').update(seed).digest();
  return crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

interface Blob {
  desc: Descriptor;
  bytes: Buffer;
}
const blobOf = (mediaType: string, bytes: Buffer): Blob => ({ desc: { mediaType, digest: sha256(bytes), size: bytes.length }, bytes });

const bases = new Map<number, Blob[]>();
/** Base image b: 1 to 3 layers, shared by every repository built on it. */
function baseLayers(b: number): Blob[] {
  let layers = bases.get(b);
  if (!layers) bases.set(b, (layers = Array.from({ length: 1 + (b % 3) }, (_, k) => blobOf(OCI_LAYER, content(`base-${b}-${k}`, 2048 + 512 * k)))));
  return layers;
}

/** Which base a repository builds on: base 0 for about a third, the rest spread thinner. */
const baseOf = (shape: FixtureShape, name: string) => Math.floor(shape.bases * unit(`base:${name}`) ** 2);

export interface FixtureImage {
  manifest: Blob;
  config?: Blob;
  /** Its own layers (the base's are shared). */
  own: Blob[];
  children: FixtureImage[];
}

/** Image j of a repository (an index over two platforms when `index`). */
export function buildImage(shape: FixtureShape, name: string, j: number, index = false): FixtureImage {
  if (index) {
    const children = ['amd64', 'arm64'].map((arch) => buildImage(shape, `${name}@${arch}`, j));
    const manifest = blobOf(OCI_INDEX, imageIndex(children.map((c, k) => ({ ...c.manifest.desc, platform: { architecture: k ? 'arm64' : 'amd64', os: 'linux' } }))));
    return { manifest, own: [], children };
  }
  const base = baseLayers(baseOf(shape, name.replace(/@.*/, '')));
  const layer = blobOf(OCI_LAYER, content(`layer-${name}-${j}`, 1024 + Math.floor(3072 * unit(`size:${name}:${j}`))));
  const created = new Date(Date.UTC(2026, 0, 1) + j * 3_600_000).toISOString();
  const config = blobOf(
    OCI_CONFIG,
    Buffer.from(
      JSON.stringify({
        created,
        architecture: name.endsWith('@arm64') ? 'arm64' : 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['/app'], Labels: { 'org.opencontainers.image.source': `https://git.example.com/${name}`, build: String(j) } },
        rootfs: { type: 'layers', diff_ids: [...base, layer].map((l) => l.desc.digest) },
        history: [...base.map(() => ({ created, created_by: 'base' })), { created, created_by: `COPY app /app # ${j}` }],
      }),
    ),
  );
  const manifest = blobOf(OCI_MANIFEST, imageManifest(config.desc, [...base, layer].map((l) => l.desc)));
  return { manifest, config, own: [layer], children: [] };
}

/** Referrer k of a subject: a signature or an SBOM. */
function buildReferrer(subject: Descriptor, k: number): { manifest: Blob; payload: Blob } {
  const payload = blobOf('application/octet-stream', content(`referrer-${subject.digest}-${k}`, 600));
  const bytes = imageManifest(EMPTY_CONFIG, [payload.desc], { artifactType: REFERRER_TYPES[k % REFERRER_TYPES.length], subject });
  return { manifest: blobOf(OCI_MANIFEST, bytes), payload };
}

/** Tags of each repository: 1 each, the rest by a heavy-tailed weight (two passes over the names, no table). */
function tagCounts(shape: FixtureShape): (i: number) => number {
  const first = 1 + shape.hotRepos;
  const plain = shape.repos - first;
  const extra = shape.tags - shape.bigTags - shape.hotRepos * shape.hotTags - plain;
  const weight = (i: number) => Math.min(300, unit(`tags:${i}`) ** -0.8);
  let total = 0;
  for (let i = first; i < shape.repos; i++) total += weight(i);
  let floors = 0;
  for (let i = first; i < shape.repos; i++) floors += Math.floor((extra * weight(i)) / total);
  const short = extra - floors; // handed out one each to the first repositories
  return (i) => {
    if (i === 0) return shape.bigTags;
    if (i < first) return shape.hotTags;
    return 1 + Math.floor((extra * weight(i)) / total) + (i - first < short ? 1 : 0);
  };
}

/** Repositories whose first image carries referrers, and whose first image is an index. */
export const hasReferrers = (i: number) => i % 50 === 3;
const isIndexRepo = (i: number) => i % 100 === 7;

export type LayoutFile = [key: string, data: Buffer];

const V2 = '/docker/registry/v2';
const hexOf = (d: string) => d.slice('sha256:'.length);
const blobKey = (d: string) => `${V2}/blobs/sha256/${hexOf(d).slice(0, 2)}/${hexOf(d)}/data`;

/** Every file of the store, repository by repository (keys are storage paths, starting with '/'). */
export function* layoutFiles(shape: FixtureShape): Generator<LayoutFile> {
  for (let b = 0; b < shape.bases; b++) for (const l of baseLayers(b)) yield [blobKey(l.desc.digest), l.bytes];
  yield [blobKey(EMPTY_CONFIG.digest), Buffer.from('{}')];
  const counts = tagCounts(shape);
  for (let i = 0; i < shape.repos; i++) yield* repoFiles(shape, i, counts(i));
}

function* repoFiles(shape: FixtureShape, i: number, tags: number): Generator<LayoutFile> {
  const name = repoName(shape, i);
  const r = `${V2}/repositories/${name}`;
  const link = (d: string) => Buffer.from(d);
  const layers = new Set<string>();
  const layerLink = function* (b: Blob): Generator<LayoutFile> {
    if (layers.has(b.desc.digest)) return;
    layers.add(b.desc.digest);
    yield [`${r}/_layers/sha256/${hexOf(b.desc.digest)}/link`, link(b.desc.digest)];
  };
  const revision = (d: string): LayoutFile => [`${r}/_manifests/revisions/sha256/${hexOf(d)}/link`, link(d)];
  const image = function* (img: FixtureImage): Generator<LayoutFile> {
    for (const c of img.children) yield* image(c);
    for (const b of img.own) yield [blobKey(b.desc.digest), b.bytes];
    if (img.config) yield [blobKey(img.config.desc.digest), img.config.bytes];
    yield [blobKey(img.manifest.desc.digest), img.manifest.bytes];
    for (const l of img.config ? baseLayers(baseOf(shape, name)) : []) yield* layerLink(l);
    for (const b of [...(img.config ? [img.config] : []), ...img.own]) yield* layerLink(b);
    yield revision(img.manifest.desc.digest);
  };
  const tag = function* (t: string, d: string): Generator<LayoutFile> {
    yield [`${r}/_manifests/tags/${t}/index/sha256/${hexOf(d)}/link`, link(d)];
    yield [`${r}/_manifests/tags/${t}/current/link`, link(d)];
  };
  const victims = i === 0 ? shape.victims : 0;
  const plainTags = tags - victims;
  const images = Math.ceil(plainTags / shape.tagsPerImage);
  for (let j = 0; j < images; j++) {
    const img = buildImage(shape, name, j, j === 0 && isIndexRepo(i));
    yield* image(img);
    if (j === 0 && hasReferrers(i)) {
      for (let k = 0; k < 2; k++) {
        const ref = buildReferrer(img.manifest.desc, k);
        yield [blobKey(ref.payload.desc.digest), ref.payload.bytes];
        yield [blobKey(ref.manifest.desc.digest), ref.manifest.bytes];
        yield* layerLink({ desc: EMPTY_CONFIG, bytes: Buffer.from('{}') });
        yield* layerLink(ref.payload);
        yield revision(ref.manifest.desc.digest);
        // berth's referrers index (distribution 2.8.2 keeps none): what a push through berth leaves.
        yield [`${r}/_referrers/sha256/${hexOf(img.manifest.desc.digest)}/sha256/${hexOf(ref.manifest.desc.digest)}/link`, link(ref.manifest.desc.digest)];
      }
    }
    const last = Math.min(plainTags, (j + 1) * shape.tagsPerImage);
    for (let k = j * shape.tagsPerImage; k < last; k++) yield* tag(tagName(k), img.manifest.desc.digest);
  }
  for (let v = 0; v < victims; v++) {
    const img = buildImage(shape, name, images + v);
    yield* image(img);
    yield* tag(victimTag(v), img.manifest.desc.digest);
  }
}

/** What the benchmark asks for by name or digest. */
export const fixtureFacts = {
  /** Victim v of BIG_REPO: its digest and its one tag. */
  victim(shape: FixtureShape, v: number): { digest: string; tag: string } {
    const images = Math.ceil((shape.bigTags - shape.victims) / shape.tagsPerImage);
    return { digest: buildImage(shape, BIG_REPO, images + v).manifest.desc.digest, tag: victimTag(v) };
  },
  /** The layer most repositories share (base 0's first). */
  sharedLayer: (): string => baseLayers(0)[0].desc.digest,
  /** A layer only repository i links (its first image's own layer). */
  uniqueLayer(shape: FixtureShape, i: number): string {
    const img = buildImage(shape, repoName(shape, i), 0, isIndexRepo(i));
    return (img.children[0] ?? img).own[0].desc.digest;
  },
  /** A repository in the middle of the store whose first image has two referrers. */
  referrerSubject(shape: FixtureShape): { repo: string; digest: string } {
    let i = Math.floor(shape.repos / 2);
    while (!hasReferrers(i)) i++;
    const name = repoName(shape, i);
    return { repo: name, digest: buildImage(shape, name, 0, isIndexRepo(i)).manifest.desc.digest };
  },
};

/**
 * Write the files under a directory (no fsync: a `sync` afterwards makes it
 * durable in one go). Returns how many were written.
 */
export async function writeLayoutToDirectory(root: string, files: Iterable<LayoutFile>, concurrency = 16): Promise<number> {
  let n = 0;
  await forEachLimit(files, concurrency, async ([key, data]) => {
    const file = path.join(root, key);
    try {
      await fsp.writeFile(file, data);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fsp.writeFile(file, data);
    }
    n++;
  });
  return n;
}

/** Write the files through a storage driver (S3), `concurrency` requests in flight. */
export async function writeLayoutToDriver(driver: StorageDriver, files: Iterable<LayoutFile>, concurrency = 32): Promise<number> {
  let n = 0;
  await forEachLimit(files, concurrency, async ([key, data]) => {
    await driver.putContent(key, data);
    n++;
  });
  return n;
}
