// Manifest parsing and validation: which media types we accept and what
// content a manifest references (so a PUT can check it all exists).
import { parseDigest, type Digest } from './digest';
import { err } from './errors';

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

const IMAGE_TYPES = new Set<string>([MediaTypes.ociManifest, MediaTypes.dockerManifest]);
const INDEX_TYPES = new Set<string>([MediaTypes.ociIndex, MediaTypes.dockerList]);
export const MANIFEST_TYPES = new Set<string>([...IMAGE_TYPES, ...INDEX_TYPES]);
// Layers a registry must not require (Windows foreign layers, non-distributable OCI layers).
const FOREIGN_LAYER = /(\.foreign\.|nondistributable)/;

export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
  platform?: unknown;
}

export interface ParsedManifest {
  mediaType: string;
  /** Blobs the manifest needs in the repository (config and layers). */
  blobs: Digest[];
  /** Manifests the manifest needs in the repository (index children). */
  manifests: Digest[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string, detail?: unknown): never {
  throw err('MANIFEST_INVALID', message, detail);
}

function descriptor(d: unknown, where: string): Descriptor {
  if (!d || typeof d !== 'object') invalid(`${where} is not a descriptor`);
  const o = d as Record<string, unknown>;
  if (typeof o.mediaType !== 'string' || !o.mediaType) invalid(`${where}.mediaType is missing`);
  if (typeof o.digest !== 'string') invalid(`${where}.digest is missing`);
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) invalid(`${where}.size is invalid`);
  try {
    parseDigest(o.digest);
  } catch {
    invalid(`${where}.digest is invalid`, { digest: o.digest });
  }
  return o as unknown as Descriptor;
}

/**
 * Parse manifest bytes sent with contentType. The media type is the JSON's
 * `mediaType` field, which must agree with Content-Type when both are given.
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    invalid('manifest is not valid JSON');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) invalid('manifest is not a JSON object');
  const m = doc as Record<string, unknown>;
  const ct = contentType?.split(';')[0].trim().toLowerCase();
  const declared = typeof m.mediaType === 'string' ? m.mediaType : undefined;
  if (m.mediaType !== undefined && typeof m.mediaType !== 'string') invalid('mediaType must be a string');
  if (declared && ct && MANIFEST_TYPES.has(ct) && declared !== ct) {
    invalid(`mediaType ${declared} does not match Content-Type ${ct}`);
  }
  let mediaType = declared ?? (ct && MANIFEST_TYPES.has(ct) ? ct : undefined);
  if (!mediaType) {
    // OCI allows mediaType to be omitted; tell the two OCI kinds apart by shape.
    mediaType = Array.isArray(m.manifests) ? MediaTypes.ociIndex : m.config ? MediaTypes.ociManifest : undefined;
  }
  if (!mediaType) invalid('manifest media type is unknown');
  if (!MANIFEST_TYPES.has(mediaType)) {
    throw err('MANIFEST_INVALID', `unsupported manifest media type ${mediaType}`, { mediaType });
  }
  if (m.schemaVersion !== 2) invalid('schemaVersion must be 2');
  const subject = m.subject === undefined ? undefined : descriptor(m.subject, 'subject');
  const artifactType = typeof m.artifactType === 'string' ? m.artifactType : undefined;
  const annotations = m.annotations && typeof m.annotations === 'object' ? (m.annotations as Record<string, string>) : undefined;
  if (IMAGE_TYPES.has(mediaType)) {
    const config = descriptor(m.config, 'config');
    if (!Array.isArray(m.layers)) invalid('layers must be an array');
    const layers = (m.layers as unknown[]).map((l, i) => descriptor(l, `layers[${i}]`));
    const blobs = [config, ...layers.filter((l) => !(FOREIGN_LAYER.test(l.mediaType) && l.urls?.length))].map((d) =>
      parseDigest(d.digest),
    );
    return { mediaType, blobs, manifests: [], subject, artifactType: artifactType ?? config.mediaType, annotations };
  }
  if (!Array.isArray(m.manifests)) invalid('manifests must be an array');
  const children = (m.manifests as unknown[]).map((c, i) => descriptor(c, `manifests[${i}]`));
  return { mediaType, blobs: [], manifests: children.map((c) => parseDigest(c.digest)), subject, artifactType, annotations };
}
