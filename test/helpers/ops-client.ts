// A few registry requests over real HTTP for the operations tests: push a
// blob, push a small image, read Prometheus text.
import crypto from 'node:crypto';
import { sha256 } from './oci-client';

export { sha256 };

/** Monolithic upload (POST ?digest=); returns the digest. */
export async function pushBlob(base: string, repo: string, data: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const digest = sha256(data);
  const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream', ...headers },
    body: new Uint8Array(data),
  });
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`blob push: HTTP ${res.status}`);
  return digest;
}

export interface PushedImage {
  manifest: Buffer;
  digest: string;
  layer: { digest: string; size: number };
  config: { digest: string; size: number };
}

/** A one-layer OCI image under repo:tag. */
export async function pushImage(base: string, repo: string, tag: string, layerBytes = crypto.randomBytes(4096)): Promise<PushedImage> {
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const config = { digest: await pushBlob(base, repo, configBytes), size: configBytes.length };
  const layer = { digest: await pushBlob(base, repo, layerBytes), size: layerBytes.length };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }),
  );
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: new Uint8Array(manifest),
  });
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`manifest push: HTTP ${res.status}`);
  return { manifest, digest: sha256(manifest), layer, config };
}

/** Sample values from Prometheus text, keyed by the series as printed (name{labels}). */
export async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`metrics: HTTP ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Polls cond until it holds; a cond that throws counts as "not yet" (a server still starting), and its last error is in the timeout's message. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await cond()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message ?? last})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
