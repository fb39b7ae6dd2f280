// Test content: random blobs and manifests of every media type the suite
// pushes. Each run makes fresh bytes so runs never collide on a shared registry.
import crypto from 'node:crypto';

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  empty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export interface Blob {
  data: Buffer;
  digest: string;
  size: number;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

export function digestOf(data: Buffer, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
  return `${algorithm}:${crypto.createHash(algorithm).update(data).digest('hex')}`;
}

export function blobOf(data: Buffer | string, algorithm: 'sha256' | 'sha512' = 'sha256'): Blob {
  const b = typeof data === 'string' ? Buffer.from(data) : data;
  return { data: b, digest: digestOf(b, algorithm), size: b.length };
}

export function randomBlob(size: number): Blob {
  return blobOf(crypto.randomBytes(size));
}

/** The OCI empty descriptor's content: `{}`. */
export const EMPTY = blobOf('{}');

export function descriptor(mediaType: string, b: Blob, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: b.digest, size: b.size, ...extra };
}

/** An image config unique to this run (a random label), as a blob. */
export function imageConfig(layers: Blob[]): Blob {
  return blobOf(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Labels: { 'org.berth.conformance': crypto.randomUUID() } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => digestOf(l.data)) },
    }),
  );
}

/**
 * Serialized manifest. Indented with three spaces and a trailing newline on
 * purpose: a registry that re-serializes instead of storing bytes shows up.
 */
export function manifestBytes(m: object): Buffer {
  return Buffer.from(JSON.stringify(m, null, 3) + '\n');
}

export interface Manifest extends Blob {
  mediaType: string;
  json: Record<string, unknown>;
}

export function manifest(m: Record<string, unknown> & { mediaType: string }): Manifest {
  const data = manifestBytes(m);
  return { ...blobOf(data), mediaType: m.mediaType, json: m };
}

export function ociManifest(config: Descriptor, layers: Descriptor[], extra: Record<string, unknown> = {}): Manifest {
  return manifest({ schemaVersion: 2, mediaType: MT.ociManifest, config, layers, ...extra });
}

export function ociIndex(manifests: Descriptor[], extra: Record<string, unknown> = {}): Manifest {
  return manifest({ schemaVersion: 2, mediaType: MT.ociIndex, manifests, ...extra });
}

export function dockerManifest(config: Descriptor, layers: Descriptor[]): Manifest {
  return manifest({ schemaVersion: 2, mediaType: MT.dockerManifest, config, layers });
}

export function dockerList(manifests: Descriptor[]): Manifest {
  return manifest({ schemaVersion: 2, mediaType: MT.dockerList, manifests });
}

/** An artifact in the v1.1 style: image manifest, artifactType, empty config. */
export function artifact(artifactType: string, layers: Descriptor[], extra: Record<string, unknown> = {}): Manifest {
  return ociManifest(descriptor(MT.empty, EMPTY), layers, { artifactType, ...extra });
}

/** Neither a tag (a leading dot) nor a digest: what the official suite asks for as a manifest that does not exist. */
export const INVALID_REFERENCE = '.INVALID_MANIFEST_NAME';

/** A well-formed digest of content that does not exist. */
export function unknownDigest(): string {
  return digestOf(crypto.randomBytes(32));
}
