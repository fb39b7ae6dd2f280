// Key material and files for auth tests: signing keys from node:crypto, an
// X.509 CA + leaf chain from openssl, a users file and a policy file.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { hashPassword, updateUsersFile } from '../../auth/users';
import { MEDIA, OciLayout } from './images';

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

/** The policy used by the auth tests (see "Access control" in README.md for the format). */
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

export interface AuthTestImage {
  /** skopeo/podman reference to it in an OCI layout: `oci:DIR:latest`. */
  ref: string;
  /** Blobs by digest: config and layer. */
  blobs: Map<string, Buffer>;
  manifest: Buffer;
  manifestDigest: string;
  mediaType: string;
}

/** A small single-layer image whose content depends on `seed`, in its own OCI layout under `parent`. */
export function makeImage(parent: string, seed: string): AuthTestImage {
  const oci = new OciLayout(path.join(parent, `image-${seed}`));
  const layer = oci.layer({ 'hello.txt': `hello from ${seed}\n` });
  const img = oci.image([layer], { label: seed });
  const read = (digest: string) => fs.readFileSync(path.join(oci.dir, 'blobs', 'sha256', digest.slice(7)));
  return {
    ref: oci.tag('latest', img.manifest),
    blobs: new Map([img.config.digest, layer.digest].map((d) => [d, read(d)])),
    manifest: read(img.manifest.digest),
    manifestDigest: img.manifest.digest,
    mediaType: MEDIA.manifest,
  };
}
