// Trusted token-signing keys: a root certificate bundle (for `x5c` chains and
// by key id), a JWKS file (by `kid`), and key ids computed as the RFC 7638 JWK
// thumbprint and as the libtrust fingerprint older token servers send.
import crypto, { type KeyObject, X509Certificate } from 'node:crypto';
import fs from 'node:fs';

/** Algorithms a registry may accept at all; `none` and HMAC never. */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512',
] as const;
export type SigningAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

const MAX_CHAIN = 5;
const MAX_CERT_B64 = 16 * 1024;

export class KeyError extends Error {}

/** RFC 7638: SHA-256 over the required JWK members in lexicographic order, base64url. */
export function jwkThumbprint(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' }) as Record<string, string>;
  let members: Record<string, string>;
  if (jwk.kty === 'RSA') members = { e: jwk.e, kty: jwk.kty, n: jwk.n };
  else if (jwk.kty === 'EC') members = { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  else if (jwk.kty === 'OKP') members = { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  else throw new KeyError(`unsupported key type ${jwk.kty}`);
  return crypto.createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** The key id of docker/libtrust: SHA-256 of the DER public key, 240 bits in base32, grouped by 4. */
export function libtrustKeyID(key: KeyObject): string {
  const der = key.export({ format: 'der', type: 'spki' });
  const sum = crypto.createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of sum) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)!.join(':');
}

export function parseCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** The algorithms that fit a key, restricted to the allowed ones. */
export function algorithmsForKey(key: KeyObject, allowed: readonly string[]): SigningAlgorithm[] {
  let fit: SigningAlgorithm[] = [];
  if (key.asymmetricKeyType === 'rsa') fit = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
  else if (key.asymmetricKeyType === 'rsa-pss') fit = ['PS256', 'PS384', 'PS512'];
  else if (key.asymmetricKeyType === 'ec') {
    const crv = key.asymmetricKeyDetails?.namedCurve;
    if (crv === 'prime256v1') fit = ['ES256'];
    else if (crv === 'secp384r1') fit = ['ES384'];
    else if (crv === 'secp521r1') fit = ['ES512'];
  }
  return fit.filter((a) => allowed.includes(a));
}

export class TrustStore {
  readonly roots: X509Certificate[];
  private readonly byKid = new Map<string, KeyObject>();

  constructor(opts: { rootcertbundle?: string; jwks?: string; keys?: KeyObject[] }) {
    this.roots = opts.rootcertbundle ? parseCertificates(fs.readFileSync(opts.rootcertbundle, 'utf8')) : [];
    if (opts.rootcertbundle && this.roots.length === 0) {
      throw new KeyError(`${opts.rootcertbundle}: no PEM certificates found`);
    }
    for (const cert of this.roots) this.add(cert.publicKey);
    if (opts.jwks) {
      const doc = JSON.parse(fs.readFileSync(opts.jwks, 'utf8')) as { keys?: Array<Record<string, unknown>> };
      if (!Array.isArray(doc.keys)) throw new KeyError(`${opts.jwks}: not a JWKS document (no "keys" array)`);
      for (const jwk of doc.keys) {
        if (jwk.kty === 'oct') throw new KeyError(`${opts.jwks}: symmetric keys are not accepted`);
        const { d: _private, ...pub } = jwk;
        const key = crypto.createPublicKey({ key: pub as crypto.JsonWebKey, format: 'jwk' });
        this.add(key, typeof jwk.kid === 'string' ? jwk.kid : undefined);
      }
    }
    for (const key of opts.keys ?? []) this.add(key);
    if (this.byKid.size === 0) throw new KeyError('auth.token: no trusted keys (set rootcertbundle or jwks)');
  }

  private add(key: KeyObject, kid?: string): void {
    if (kid) this.byKid.set(kid, key);
    this.byKid.set(jwkThumbprint(key), key);
    this.byKid.set(libtrustKeyID(key), key);
  }

  /** The key a token header points at: an `x5c` chain ending at a trusted root, or a known `kid`. */
  keyFor(header: { kid?: unknown; x5c?: unknown }): KeyObject {
    if (header.x5c !== undefined) return this.verifyChain(header.x5c);
    if (typeof header.kid === 'string') {
      const key = this.byKid.get(header.kid);
      if (key) return key;
      throw new KeyError('unknown signing key id');
    }
    throw new KeyError('token does not identify its signing key (no x5c or kid)');
  }

  private verifyChain(x5c: unknown): KeyObject {
    if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > MAX_CHAIN) throw new KeyError('invalid x5c header');
    let certs: X509Certificate[];
    try {
      certs = x5c.map((c) => {
        if (typeof c !== 'string' || c.length > MAX_CERT_B64) throw new KeyError('invalid x5c entry');
        return new X509Certificate(Buffer.from(c, 'base64'));
      });
    } catch {
      throw new KeyError('invalid x5c certificate');
    }
    const now = Date.now();
    const current = (c: X509Certificate) => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
    if (!certs.every(current)) throw new KeyError('x5c certificate outside its validity period');
    for (let i = 0; i + 1 < certs.length; i++) {
      const child = certs[i];
      const parent = certs[i + 1];
      if (!parent.ca || !child.checkIssued(parent) || !child.verify(parent.publicKey)) {
        throw new KeyError('x5c chain is broken');
      }
    }
    const top = certs[certs.length - 1];
    const anchored = this.roots.some(
      (root) =>
        current(root) &&
        (root.fingerprint256 === top.fingerprint256 ||
          (root.ca && top.checkIssued(root) && top.verify(root.publicKey))),
    );
    if (!anchored) throw new KeyError('x5c chain does not lead to a trusted root');
    return certs[0].publicKey;
  }
}
