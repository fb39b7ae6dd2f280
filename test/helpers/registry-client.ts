// A minimal registry client over real HTTP (fetch) for tests: push blobs and
// manifests, mount, pull back. Images are built from random bytes in memory;
// manifests are oci-client's, over descriptors of those bytes.
import crypto from 'node:crypto';
import { OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, imageIndex, imageManifest as ociManifest, sha256 } from './oci-client';

export { sha256 };

export interface Blob {
  digest: string;
  bytes: Buffer;
}

export interface Image {
  repo: string;
  tag?: string;
  digest: string;
  mediaType: string;
  manifest: Buffer;
  blobs: Blob[];
}

export function blob(bytes: Buffer | string): Blob {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  return { digest: sha256(b), bytes: b };
}

export function randomBlob(size: number): Blob {
  return blob(crypto.randomBytes(size));
}

const descriptor = (mediaType: string, b: Blob) => ({ mediaType, digest: b.digest, size: b.bytes.length });

/** An OCI image manifest over config + layers (uncompressed tar), optionally with a subject (a referrer). */
export function imageManifest(config: Blob, layers: Blob[], extra: Record<string, unknown> = {}): Buffer {
  return ociManifest(
    descriptor(OCI_CONFIG, config),
    layers.map((l) => descriptor('application/vnd.oci.image.layer.v1.tar', l)),
    extra,
  );
}

/** An OCI index over image manifests, one made-up architecture each. */
export function indexManifest(children: { digest: string; size: number }[]): Buffer {
  return imageIndex(children.map((c, i) => ({ mediaType: OCI_MANIFEST, digest: c.digest, size: c.size, platform: { os: 'linux', architecture: `arch${i}` } })));
}

async function expect(res: Response, status: number[], what: string): Promise<Response> {
  if (!status.includes(res.status)) {
    throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  }
  return res;
}

/** Monolithic push: POST then PUT ?digest= with the whole body. `headers`: e.g. an Authorization. */
export async function pushBlob(url: string, repo: string, b: Blob, headers: Record<string, string> = {}): Promise<void> {
  const start = await expect(await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers }), [202], `start upload ${repo}`);
  await start.arrayBuffer();
  const loc = new URL(start.headers.get('location')!, url);
  loc.searchParams.set('digest', b.digest);
  const put = await fetch(loc, { method: 'PUT', body: new Uint8Array(b.bytes), headers: { ...headers, 'content-type': 'application/octet-stream' } });
  await expect(put, [201], `put blob ${repo} ${b.digest}`);
  await put.arrayBuffer();
}

/** Cross-repository mount; true when the registry mounted (201), false when it fell back to an upload (202). */
export async function mountBlob(url: string, repo: string, digest: string, from?: string): Promise<boolean> {
  const q = new URLSearchParams({ mount: digest });
  if (from) q.set('from', from);
  const res = await expect(await fetch(`${url}/v2/${repo}/blobs/uploads/?${q}`, { method: 'POST' }), [201, 202], `mount ${digest} into ${repo}`);
  await res.arrayBuffer();
  if (res.status === 202) {
    // Cancel the upload session the fallback opened.
    const del = await fetch(new URL(res.headers.get('location')!, url), { method: 'DELETE' });
    await del.arrayBuffer();
  }
  return res.status === 201;
}

/** The path and query of an upload's Location (relative or absolute). */
const pathOf = (location: string) => {
  const u = new URL(location, 'http://x');
  return u.pathname + u.search;
};

/** POST a new upload session; returns its path (what later requests append to the base URL). */
export async function startUpload(base: string, repo: string): Promise<string> {
  const res = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (res.status !== 202) throw new Error(`POST upload: ${res.status} ${await res.text()}`);
  return pathOf(res.headers.get('location')!);
}

/** PATCH a chunk starting at `start` (Content-Range); the response is returned, its body read. */
export async function patchUpload(base: string, loc: string, data: Buffer, start: number): Promise<Response> {
  const res = await fetch(base + loc, {
    method: 'PATCH',
    headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + data.length - 1}` },
    body: new Uint8Array(data),
  });
  await res.arrayBuffer();
  return res;
}

/** PUT ?digest= to finish an upload, with an optional last chunk. */
export async function finishUpload(base: string, loc: string, digest: string, body?: Buffer): Promise<Response> {
  const sep = loc.includes('?') ? '&' : '?';
  return fetch(`${base}${loc}${sep}digest=${encodeURIComponent(digest)}`, {
    method: 'PUT',
    ...(body && { headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(body) }),
  });
}

/** An upload's state as the registry reports it: 204 with its Range while it exists, else the status and error code. */
export async function uploadStatus(base: string, loc: string): Promise<{ status: number; range?: string | null; code?: string }> {
  const res = await fetch(base + loc);
  const body = await res.text();
  return res.status === 204 ? { status: 204, range: res.headers.get('range') } : { status: res.status, code: JSON.parse(body).errors?.[0]?.code };
}

/** The session id at the end of an upload's path. */
export const uploadId = (loc: string) => loc.split('?')[0].split('/').pop()!;

export async function pushManifest(url: string, repo: string, reference: string, bytes: Buffer, mediaType: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await expect(
    await fetch(`${url}/v2/${repo}/manifests/${reference}`, { method: 'PUT', body: new Uint8Array(bytes), headers: { ...headers, 'content-type': mediaType } }),
    [201],
    `put manifest ${repo}:${reference}`,
  );
  await res.arrayBuffer();
  return res.headers.get('docker-content-digest')!;
}

/** Push config, layers and the image manifest under tag (or by digest). */
export async function pushImage(
  url: string,
  repo: string,
  tag: string | undefined,
  config: Blob,
  layers: Blob[],
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<Image> {
  for (const b of [config, ...layers]) await pushBlob(url, repo, b, headers);
  const manifest = imageManifest(config, layers, extra);
  const digest = sha256(manifest);
  await pushManifest(url, repo, tag ?? digest, manifest, OCI_MANIFEST, headers);
  return { repo, tag, digest, mediaType: OCI_MANIFEST, manifest, blobs: [config, ...layers] };
}

export async function pushIndex(url: string, repo: string, tag: string, children: Image[]): Promise<Image> {
  const manifest = indexManifest(children.map((c) => ({ digest: c.digest, size: c.manifest.length })));
  const digest = sha256(manifest);
  await pushManifest(url, repo, tag, manifest, OCI_INDEX);
  return { repo, tag, digest, mediaType: OCI_INDEX, manifest, blobs: [] };
}

export async function getBytes(url: string, path: string, accept?: string): Promise<{ status: number; bytes: Buffer }> {
  const res = await fetch(`${url}${path}`, { headers: accept ? { accept } : {} });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** Pull an image by digest and check every byte: the manifest and each blob. Returns problems found. */
export async function verifyPull(url: string, img: Image): Promise<string[]> {
  const problems: string[] = [];
  const ref = img.tag ?? img.digest;
  const m = await getBytes(url, `/v2/${img.repo}/manifests/${img.digest}`, img.mediaType);
  if (m.status !== 200 || !m.bytes.equals(img.manifest)) problems.push(`${img.repo}@${img.digest} (${ref}): manifest ${m.status}`);
  for (const b of img.blobs) {
    const r = await getBytes(url, `/v2/${img.repo}/blobs/${b.digest}`);
    if (r.status !== 200 || !r.bytes.equals(b.bytes)) problems.push(`${img.repo}@${img.digest}: blob ${b.digest} ${r.status}`);
  }
  return problems;
}
