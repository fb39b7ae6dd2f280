// Manifest parsing and validation: which media types we accept and what
// content a manifest references (so a PUT can check it all exists).
import { parseDigest, type Digest } from './digest';
import { err } from './errors';
import { jsonProblem } from './jsoncheck';

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
  /** The size each descriptor of `blobs` and `manifests` declares, in the same order. */
  sizes: { blobs: number[]; manifests: number[] };
  /** URLs the layers name (foreign layers), checked against validation.manifests.urls. */
  urls: string[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string, detail?: unknown): never {
  throw err('MANIFEST_INVALID', message, detail);
}

/** Annotations are a map of strings to strings (image-spec); only a PUT is held to that. */
function checkAnnotations(a: unknown, where: string): void {
  if (a === undefined) return;
  if (!a || typeof a !== 'object' || Array.isArray(a)) invalid(`${where} must be an object`);
  for (const [k, v] of Object.entries(a)) if (typeof v !== 'string') invalid(`${where}[${JSON.stringify(k)}] must be a string`);
}

function descriptor(d: unknown, where: string, strict: boolean): Descriptor {
  if (!d || typeof d !== 'object') invalid(`${where} is not a descriptor`);
  const o = d as Record<string, unknown>;
  if (strict) checkAnnotations(o.annotations, `${where}.annotations`);
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
 * `strict` (a PUT) also refuses what JSON.parse lets through (invalid UTF-8,
 * duplicate keys, absurd nesting) and annotations that are not strings; what
 * is already stored is read leniently.
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined, strict = false): ParsedManifest {
  let doc: unknown;
  const text = bytes.toString('utf8');
  try {
    doc = JSON.parse(text);
  } catch {
    invalid('manifest is not valid JSON');
  }
  const problem = strict ? jsonProblem(bytes, text) : undefined;
  if (problem) invalid(`manifest JSON: ${problem}`);
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
  if (strict) checkAnnotations(m.annotations, 'annotations');
  const subject = m.subject === undefined ? undefined : descriptor(m.subject, 'subject', strict);
  const artifactType = typeof m.artifactType === 'string' ? m.artifactType : undefined;
  const annotations = m.annotations && typeof m.annotations === 'object' ? (m.annotations as Record<string, string>) : undefined;
  if (IMAGE_TYPES.has(mediaType)) {
    const config = descriptor(m.config, 'config', strict);
    if (!Array.isArray(m.layers)) invalid('layers must be an array');
    const layers = (m.layers as unknown[]).map((l, i) => descriptor(l, `layers[${i}]`, strict));
    const needed = [config, ...layers.filter((l) => !(FOREIGN_LAYER.test(l.mediaType) && l.urls?.length))];
    const blobs = needed.map((d) => parseDigest(d.digest));
    const sizes = { blobs: needed.map((d) => d.size), manifests: [] };
    const urls = layers.flatMap((l) => (Array.isArray(l.urls) ? l.urls : []));
    return { mediaType, blobs, manifests: [], sizes, urls, subject, artifactType: artifactType ?? config.mediaType, annotations };
  }
  if (!Array.isArray(m.manifests)) invalid('manifests must be an array');
  const children = (m.manifests as unknown[]).map((c, i) => descriptor(c, `manifests[${i}]`, strict));
  const sizes = { blobs: [], manifests: children.map((c) => c.size) };
  return { mediaType, blobs: [], manifests: children.map((c) => parseDigest(c.digest)), sizes, urls: [], subject, artifactType, annotations };
}

/** distribution's validation.manifests.urls: patterns a layer URL must match (any of allow) and must not (any of deny). */
export interface UrlPolicy {
  allow?: RegExp[];
  deny?: RegExp[];
}

/** Refuse layer URLs the policy does not admit, as distribution does: http(s) only, no fragment, allowed and not denied. */
export function checkLayerUrls(urls: string[], policy: UrlPolicy): void {
  for (const u of urls) {
    let url: URL | undefined;
    try {
      url = new URL(u);
    } catch {
      // refused below
    }
    const ok =
      url !== undefined &&
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      !url.hash &&
      (!policy.allow?.length || policy.allow.some((re) => re.test(u))) &&
      !policy.deny?.some((re) => re.test(u));
    if (!ok) invalid('a layer URL is not allowed by the registry (validation.manifests.urls)', { url: u });
  }
}
