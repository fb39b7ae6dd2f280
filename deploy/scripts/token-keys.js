#!/usr/bin/env node
// token-keys.js DIR: make what a registry and its token service need to trust each
// other, unless DIR has it already: token.key (EC P-256 private key, PEM) for the token
// service, jwks.json (its public key; the kid is the RFC 7638 thumbprint) for the
// registry's auth.token.jwks, and an empty users.yml. Files go to uid/gid 65532, the
// user berth runs as in its image. Used by compose.yaml's token-keys service.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: token-keys.js DIR');
  process.exit(2);
}
const file = (name) => path.join(dir, name);
const UID = 65532;

if (!fs.existsSync(file('token.key'))) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const kid = crypto.createHash('sha256')
    .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
    .digest('base64url');
  fs.writeFileSync(file('token.key'), privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  fs.writeFileSync(file('jwks.json'), JSON.stringify({ keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] }, null, 2) + '\n');
  console.log(`token-keys: new signing key ${kid}`);
}
if (!fs.existsSync(file('users.yml'))) fs.writeFileSync(file('users.yml'), 'users: {}\n', { mode: 0o600 });
for (const f of ['token.key', 'jwks.json', 'users.yml']) fs.chownSync(file(f), UID, UID);
fs.chownSync(dir, UID, UID);
