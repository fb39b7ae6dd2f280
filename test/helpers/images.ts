// Test images built offline: OCI image layouts written directly by Node, with
// small deterministic tar+gzip layers, so every run pushes the same digests.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { sha256 } from './oci-client';

export const MEDIA = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

export { sha256 };

/**
 * A temp directory whose path is lowercase and dot-free: podman derives an image
 * name from an `oci:PATH` reference and rejects anything else.
 */
export function plainTempDir(prefix: string): string {
  const dir = path.join(os.tmpdir(), `${prefix}-${crypto.randomBytes(5).toString('hex')}`);
  fs.mkdirSync(dir, { mode: 0o700 });
  return dir;
}

// ---------- tar (ustar), deterministic: fixed mtime, owner 0:0 ----------

function tarHeader(name: string, size: number, type: '0' | '5', mode: number): Buffer {
  const h = Buffer.alloc(512);
  const field = (off: number, len: number, value: string) => h.write(value, off, len, 'ascii');
  const octal = (off: number, len: number, n: number) => field(off, len, n.toString(8).padStart(len - 1, '0') + '\0');
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long for this writer: ${name}`);
  field(0, 100, name);
  octal(100, 8, mode);
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, size);
  octal(136, 12, 1_700_000_000); // fixed mtime
  field(148, 8, '        '); // checksum counts as spaces while summing
  field(156, 1, type);
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  field(265, 32, 'root');
  field(297, 32, 'root');
  let sum = 0;
  for (const b of h) sum += b;
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

/** A tar of the given files (parent directories are added), entries in sorted order. */
export function makeTar(files: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = [];
  const dirs = new Set<string>();
  for (const name of Object.keys(files).sort()) {
    const segs = name.split('/');
    for (let i = 1; i < segs.length; i++) {
      const d = segs.slice(0, i).join('/') + '/';
      if (!dirs.has(d)) {
        dirs.add(d);
        parts.push(tarHeader(d, 0, '5', 0o755));
      }
    }
    const body = Buffer.from(files[name]);
    parts.push(tarHeader(name, body.length, '0', 0o644), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

// ---------- OCI image layout ----------

export interface Layer extends Descriptor {
  /** sha256 of the uncompressed tar, as in the config's rootfs.diff_ids. */
  diffId: string;
}

export interface ImageContent {
  manifest: Descriptor;
  config: Descriptor;
  layers: Layer[];
  /** Every digest a registry stores for this image: manifest, config, layers. */
  digests: string[];
}

export interface TestImage extends ImageContent {
  /** skopeo/podman transport reference, `oci:DIR:TAG`. */
  ref: string;
  tag: string;
}

export interface TestIndex {
  ref: string;
  tag: string;
  index: Descriptor;
  /** In index order, with their "os/arch". */
  images: (ImageContent & { platform: string })[];
  digests: string[];
}

/** Writes blobs and tagged images into one OCI layout directory. */
export class OciLayout {
  private readonly refs: Descriptor[] = [];

  constructor(readonly dir: string) {
    fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    this.writeIndex();
  }

  blob(bytes: Buffer, mediaType: string): Descriptor {
    const digest = sha256(bytes);
    fs.writeFileSync(path.join(this.dir, 'blobs', 'sha256', digest.slice(7)), bytes);
    return { mediaType, digest, size: bytes.length };
  }

  /** A gzip layer holding `files`; the same files always give the same digest. */
  layer(files: Record<string, string | Buffer>): Layer {
    const tar = makeTar(files);
    // level and OS byte fixed by zlib; gzip's mtime field is 0: deterministic output
    const d = this.blob(zlib.gzipSync(tar, { level: 6 }), MEDIA.layer);
    return { ...d, diffId: sha256(tar) };
  }

  /** An image manifest (not tagged); tag it with tag(). */
  image(layers: Layer[], opts: { arch?: string; label?: string } = {}): ImageContent {
    const arch = opts.arch ?? 'amd64';
    const config = this.blob(
      Buffer.from(
        JSON.stringify({
          created: '2024-01-01T00:00:00Z',
          architecture: arch,
          os: 'linux',
          config: { Env: ['PATH=/bin'], Cmd: ['/bin/true'], Labels: { 'berth.test': opts.label ?? 'image' } },
          rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
          history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'berth test images' })),
        }),
      ),
      MEDIA.config,
    );
    const strip = ({ mediaType, digest, size }: Descriptor): Descriptor => ({ mediaType, digest, size });
    const manifest = this.blob(
      Buffer.from(
        JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.manifest, config: strip(config), layers: layers.map(strip) }),
      ),
      MEDIA.manifest,
    );
    return { manifest, config, layers, digests: [manifest.digest, config.digest, ...layers.map((l) => l.digest)] };
  }

  /** An index over images, each with its platform ("os/arch"). */
  index(images: (ImageContent & { platform: string })[]): Descriptor {
    const manifests = images.map((img) => {
      const [osName, architecture] = img.platform.split('/');
      return { ...img.manifest, platform: { architecture, os: osName } };
    });
    return this.blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests })), MEDIA.index);
  }

  /** Record `desc` under `tag` in index.json and return its `oci:` reference. */
  tag(tag: string, desc: Descriptor): string {
    const i = this.refs.findIndex((r) => r.annotations?.['org.opencontainers.image.ref.name'] === tag);
    if (i >= 0) this.refs.splice(i, 1);
    this.refs.push({ mediaType: desc.mediaType, digest: desc.digest, size: desc.size, annotations: { 'org.opencontainers.image.ref.name': tag } });
    this.writeIndex();
    return `oci:${this.dir}:${tag}`;
  }

  private writeIndex(): void {
    fs.writeFileSync(path.join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: this.refs }));
  }
}

/** Read back the descriptor an OCI layout tags `tag` (e.g. one a client wrote). */
export function layoutRef(dir: string, tag: string): Descriptor {
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!d) throw new Error(`no tag ${tag} in ${dir}/index.json`);
  return d;
}

export interface TestImages {
  dir: string;
  /** linux/amd64: base layers 1 and 2, then its own layer. */
  app: TestImage;
  /** linux/amd64: the same two base layers as `app`, then a different own layer. */
  sibling: TestImage;
  /** An index over linux/amd64 and linux/arm64 images. */
  multi: TestIndex;
  cleanup(): void;
}

/** Deterministic file content of about `kib` KiB, different per seed (so gzip can't shrink it to nothing). */
function filler(seed: string, kib: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; out.length * 32 < kib * 1024; i++) out.push(crypto.createHash('sha256').update(`${seed}:${i}`).digest());
  return Buffer.concat(out);
}

/**
 * The standard test images in one fresh OCI layout (lowercase, dot-free temp path).
 * `variant` changes every layer, for tests that need content no registry has seen.
 */
export function buildTestImages(variant = 'v1'): TestImages {
  const dir = plainTempDir('berthimg');
  const oci = new OciLayout(dir);
  const base1 = oci.layer({ 'etc/os-release': `NAME=berth-test\nVARIANT=${variant}\n`, 'usr/lib/base1.bin': filler(`${variant}/base1`, 24) });
  const base2 = oci.layer({ 'usr/share/base2.bin': filler(`${variant}/base2`, 16) });
  const mk = (name: string, layers: Layer[], arch = 'amd64') => oci.image(layers, { arch, label: name });

  const appImg = mk('app', [base1, base2, oci.layer({ 'app/app.txt': `app ${variant}\n`, 'app/data.bin': filler(`${variant}/app`, 8) })]);
  const sibImg = mk('sibling', [base1, base2, oci.layer({ 'app/sibling.txt': `sibling ${variant}\n` })]);
  const platforms = [
    { ...mk('multi-amd64', [oci.layer({ 'arch.txt': `amd64 ${variant}\n` })]), platform: 'linux/amd64' },
    { ...mk('multi-arm64', [oci.layer({ 'arch.txt': `arm64 ${variant}\n` })], 'arm64'), platform: 'linux/arm64' },
  ];
  const index = oci.index(platforms);

  const tagged = (tag: string, img: ImageContent): TestImage => ({ ...img, tag, ref: oci.tag(tag, img.manifest) });
  return {
    dir,
    app: tagged('app', appImg),
    sibling: tagged('sibling', sibImg),
    multi: {
      tag: 'multi',
      ref: oci.tag('multi', index),
      index,
      images: platforms,
      digests: [index.digest, ...platforms.flatMap((p) => p.digests)],
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
