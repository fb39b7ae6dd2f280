// What a stored manifest is, for people: image, index or artifact, its
// platforms, what a pull of it fetches. Content by digest never changes, so
// descriptions are cached freely (bounded in bytes).
import { LRUCache } from 'lru-cache';
import { isDigest } from './digest';
import { MediaTypes, type Descriptor } from './manifest';

export type ManifestKind = 'image' | 'index' | 'artifact';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ManifestInfo {
  digest: string;
  mediaType: string;
  kind: ManifestKind;
  artifactType?: string;
  /** The manifest's own bytes. */
  size: number;
  /** What pulling it fetches: the manifest, its config and layers; for an index, every child too. */
  totalSize: number;
  config?: Descriptor;
  layers: Descriptor[];
  /** Index children. */
  children: (Descriptor & { platform?: Platform })[];
  /** An image's own platform (from its config), or an index's children's. */
  platforms: Platform[];
  subject?: string;
  annotations?: Record<string, string>;
}

const IMAGE_CONFIGS = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);
const INDEXES = new Set<string>([MediaTypes.ociIndex, MediaTypes.dockerList]);

/** Reads a blob's bytes by digest; undefined when the store does not hold it. */
export type BlobBytes = (digest: string) => Promise<Buffer | undefined>;

export function parseJson(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(bytes.toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function descriptors(v: unknown): Descriptor[] {
  if (!Array.isArray(v)) return [];
  return v.filter((d): d is Descriptor => d && typeof d === 'object' && typeof d.digest === 'string' && isDigest(d.digest) && typeof d.size === 'number');
}

function platformOf(v: unknown): Platform | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const p = v as Record<string, unknown>;
  if (typeof p.os !== 'string' || typeof p.architecture !== 'string') return undefined;
  return { os: p.os, architecture: p.architecture, ...(typeof p.variant === 'string' && { variant: p.variant }) };
}

export class Describer {
  private readonly cache: LRUCache<string, ManifestInfo>;
  private readonly platforms: LRUCache<string, Platform | false>;

  constructor(
    private readonly read: BlobBytes,
    maxBytes = 4 << 20,
  ) {
    this.cache = new LRUCache({ maxSize: maxBytes, sizeCalculation: (m) => 400 + 150 * (m.layers.length + m.children.length) });
    this.platforms = new LRUCache({ maxSize: 1 << 20, sizeCalculation: (_p, k) => k.length + 200 });
  }

  /** undefined when the store does not hold the manifest or it is not JSON. */
  async describe(digest: string, depth = 0): Promise<ManifestInfo | undefined> {
    const hit = this.cache.get(digest);
    if (hit) return hit;
    const bytes = await this.read(digest);
    const doc = bytes && parseJson(bytes);
    if (!bytes || !doc) return undefined;
    const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
    const isIndex = declared ? INDEXES.has(declared) : Array.isArray(doc.manifests);
    const mediaType = declared ?? (isIndex ? MediaTypes.ociIndex : MediaTypes.ociManifest);
    const subject = doc.subject && typeof doc.subject === 'object' ? (doc.subject as Descriptor).digest : undefined;
    const annotations = doc.annotations && typeof doc.annotations === 'object' ? (doc.annotations as Record<string, string>) : undefined;
    const base = { digest, mediaType, size: bytes.length, subject, annotations };
    let info: ManifestInfo;
    if (isIndex) {
      const children = descriptors(doc.manifests).map((c) => ({ ...c, platform: platformOf(c.platform) }));
      let totalSize = bytes.length;
      // An index of indexes is legal; a cycle is not possible by content address, depth only bounds work.
      for (const c of children) totalSize += (depth < 4 ? (await this.describe(c.digest, depth + 1))?.totalSize : undefined) ?? c.size;
      const platforms = children.map((c) => c.platform).filter((p): p is Platform => Boolean(p && p.os !== 'unknown'));
      const artifactType = typeof doc.artifactType === 'string' ? doc.artifactType : undefined;
      info = { ...base, kind: 'index', artifactType, totalSize, layers: [], children, platforms };
    } else {
      const config = descriptors([doc.config])[0];
      const layers = descriptors(doc.layers);
      const artifactType = typeof doc.artifactType === 'string' ? doc.artifactType : config && !IMAGE_CONFIGS.has(config.mediaType) ? config.mediaType : undefined;
      const kind: ManifestKind = artifactType ? 'artifact' : 'image';
      const totalSize = bytes.length + (config?.size ?? 0) + layers.reduce((n, l) => n + l.size, 0);
      const p = kind === 'image' && config ? await this.platform(config.digest) : undefined;
      info = { ...base, kind, artifactType, totalSize, config, layers, children: [], platforms: p ? [p] : [] };
    }
    this.cache.set(digest, info);
    return info;
  }

  private async platform(configDigest: string): Promise<Platform | undefined> {
    const hit = this.platforms.get(configDigest);
    if (hit !== undefined) return hit || undefined;
    const bytes = await this.read(configDigest);
    const p = bytes ? platformOf(parseJson(bytes)) : undefined;
    this.platforms.set(configDigest, p ?? false);
    return p;
  }
}

/** Referrers grouped the way people ask about them. */
export type ReferrerKind = 'signature' | 'sbom' | 'attestation' | 'other';

export function referrerKind(artifactType: string | undefined): ReferrerKind {
  const t = (artifactType ?? '').toLowerCase();
  if (/signature|\.sig\b|cosign.*sig|simplesigning/.test(t)) return 'signature';
  if (/spdx|cyclonedx|sbom|syft/.test(t)) return 'sbom';
  if (/in-toto|intoto|attestation|provenance|slsa|dsse/.test(t)) return 'attestation';
  return 'other';
}
