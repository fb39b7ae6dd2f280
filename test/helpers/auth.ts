// Key material and files for auth tests: signing keys from node:crypto, an
// X.509 CA + leaf chain from openssl, a users file and a policy file.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { hashPassword, updateUsersFile } from '../../auth/users';

export interface KeyFiles {
  privateKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
  keyPath: string;
}

export function writeKey(dir: string, name: string, type: 'rsa' | 'ec' = 'rsa'): KeyFiles {
  const { privateKey, publicKey } =
    type === 'rsa'
      ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
      : crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPath = path.join(dir, `${name}.key`);
  fs.writeFileSync(keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  return { privateKey, publicKey, keyPath };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA certificate (ca.crt) and a leaf certificate for `leaf.key` signed by it (leaf.crt). */
export function writeChain(dir: string, prefix: string): { ca: string; leafKey: KeyFiles; leafCert: string; chain: string } {
  const ca = writeKey(dir, `${prefix}-ca`);
  const leafKey = writeKey(dir, `${prefix}-leaf`);
  const ext = path.join(dir, `${prefix}-ca.ext`);
  fs.writeFileSync(ext, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl(['req', '-x509', '-new', '-key', ca.keyPath, '-subj', `/CN=${prefix} test CA`, '-days', '2', '-out', `${prefix}-ca.crt`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-new', '-key', leafKey.keyPath, '-subj', `/CN=${prefix} token signer`, '-out', `${prefix}-leaf.csr`], dir);
  openssl(['x509', '-req', '-in', `${prefix}-leaf.csr`, '-CA', `${prefix}-ca.crt`, '-CAkey', ca.keyPath, '-CAcreateserial', '-days', '2', '-out', `${prefix}-leaf.crt`], dir);
  const chain = path.join(dir, `${prefix}-chain.pem`);
  fs.writeFileSync(chain, fs.readFileSync(path.join(dir, `${prefix}-leaf.crt`), 'utf8') + fs.readFileSync(path.join(dir, `${prefix}-ca.crt`), 'utf8'));
  return { ca: path.join(dir, `${prefix}-ca.crt`), leafKey, leafCert: path.join(dir, `${prefix}-leaf.crt`), chain };
}

export async function addUser(file: string, name: string, password: string, groups: string[] = [], robot = false): Promise<void> {
  const hash = await hashPassword(password);
  updateUsersFile(file, (users) => users.set(name, { name, password: hash, groups, robot }));
}

export function basic(user: string, password: string): string {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
}

/** The policy used by the auth tests (see auth/README.md for the format). */
export const TEST_POLICY = `
admins: [root]
catalog: [authenticated]
default:
  authenticated: [pull]
rules:
  - repository: "public/**"
    grant:
      anonymous: [pull]
      group:dev: [pull, push]
  - repository: "{user}/**"
    grant:
      authenticated: [pull, push, delete]
  - repository: "team/*"
    grant:
      group:dev: [pull, push]
      group:ops: [pull, push, delete]
  - repository: "team/secret"
    grant:
      ops1: [pull]
  - repository: "private/**"
    grant: {}
`;

const sha256 = (b: Buffer) => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex');

/** One-file ustar archive (what an image layer is), without a tar dependency. */
function tarOneFile(name: string, content: Buffer): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(content.length.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\u000000', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([h, content, pad, Buffer.alloc(1024)]);
}

export interface TestImage {
  /** Blobs by digest: config and layer. */
  blobs: Map<string, Buffer>;
  manifest: Buffer;
  manifestDigest: string;
  mediaType: string;
}

/** A small single-layer OCI image whose content depends on `seed`. */
export function makeImage(seed: string): TestImage {
  const tar = tarOneFile('hello.txt', Buffer.from(`hello from ${seed}\n`));
  const layer = zlib.gzipSync(tar);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }));
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
  }));
  return { blobs: new Map([[sha256(config), config], [sha256(layer), layer]]), manifest, manifestDigest: sha256(manifest), mediaType };
}

/** Write an image as an OCI layout directory (tag `latest`) for skopeo and podman. */
export function writeOciLayout(dir: string, img: TestImage): void {
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const [d, b] of [...img.blobs, [img.manifestDigest, img.manifest] as const]) {
    fs.writeFileSync(path.join(dir, 'blobs', 'sha256', d.slice(7)), b);
  }
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: img.mediaType, digest: img.manifestDigest, size: img.manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
  }));
}
