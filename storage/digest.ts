// Digests as the OCI image spec defines them, and hashing while streaming.
import crypto from 'node:crypto';
import { err } from './errors';

export type Algorithm = 'sha256' | 'sha512';
const HEX_LENGTH: Record<Algorithm, number> = { sha256: 64, sha512: 128 };
// algorithm ":" encoded, with the spec's general grammar; only registered algorithms are supported.
const GRAMMAR = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export interface Digest {
  algorithm: Algorithm;
  hex: string;
  /** "sha256:<hex>" */
  value: string;
}

export function parseDigest(s: string): Digest {
  if (typeof s !== 'string' || s.length > 256 || !GRAMMAR.test(s)) {
    throw err('DIGEST_INVALID', 'invalid digest', { digest: s });
  }
  const i = s.indexOf(':');
  const algorithm = s.slice(0, i);
  const hex = s.slice(i + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw err('DIGEST_INVALID', `unsupported digest algorithm ${algorithm} (sha256 and sha512 are)`, { digest: s });
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw err('DIGEST_INVALID', 'invalid digest', { digest: s });
  }
  return { algorithm, hex, value: s };
}

export function isDigest(s: string): boolean {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

export function digestOf(data: Buffer, algorithm: Algorithm = 'sha256'): string {
  return `${algorithm}:${crypto.createHash(algorithm).update(data).digest('hex')}`;
}

export function newHash(algorithm: Algorithm): crypto.Hash {
  return crypto.createHash(algorithm);
}
