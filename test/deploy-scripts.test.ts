// The plain-JS helpers the deployments run: deploy/healthcheck.js (the image's
// HEALTHCHECK) against a real berth, and deploy/scripts/token-keys.js (compose.yaml's
// key maker) producing a key the published JWKS verifies.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { startBerth, tempDir } from './helpers/berth';
import { freePort } from './helpers/process';

const REPO = path.resolve(__dirname, '../..');
const HEALTHCHECK = path.join(REPO, 'deploy/healthcheck.js');
const TOKEN_KEYS = path.join(REPO, 'deploy/scripts/token-keys.js');

/** Exit code of the healthcheck with only the given environment (no REGISTRY_* from ours). */
function healthcheck(env: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_') && !k.startsWith('BERTH_')));
    // cwd: the repo, so require('yaml') resolves as it does in /app
    execFile(process.execPath, [HEALTHCHECK], { env: { ...clean, ...env }, cwd: REPO, timeout: 10_000 }, (err) => {
      resolve(err ? (typeof err.code === 'number' ? err.code : 99) : 0);
    });
  });
}

t.test('healthcheck.js follows the server address and fails when nothing answers', async (t) => {
  const none = tempDir('berth-hc-');
  const berth = await startBerth({ root: path.join(none, 'store') });
  t.teardown(() => berth.stop());
  const noConfig = path.join(none, 'absent.yml');
  t.equal(await healthcheck({ REGISTRY_HTTP_ADDR: berth.host, BERTH_CONFIG: noConfig }), 0, 'REGISTRY_HTTP_ADDR');
  const config = path.join(none, 'config.yml');
  fs.writeFileSync(config, `http:\n  addr: 127.0.0.1:${berth.port}\n`);
  t.equal(await healthcheck({ BERTH_CONFIG: config }), 0, 'http.addr from the config file');
  t.equal(await healthcheck({ BERTH_HEALTHCHECK_URL: `${berth.url}/healthz` }), 0, 'explicit URL');
  const closed = await freePort();
  t.equal(await healthcheck({ REGISTRY_HTTP_ADDR: `127.0.0.1:${closed}`, BERTH_CONFIG: noConfig }), 1, 'nothing listening');
  t.equal(await healthcheck({ BERTH_HEALTHCHECK_URL: `${berth.url}/v2/nothing-here`, BERTH_CONFIG: noConfig }), 1, 'a non-200 answer');
});

t.test('token-keys.js makes a signing key its JWKS verifies, once', { skip: process.getuid?.() === 0 ? false : 'chowns to 65532: needs root' }, async (t) => {
  const dir = tempDir('berth-keys-');
  await promisify(execFile)(process.execPath, [TOKEN_KEYS, dir]);
  const key = fs.readFileSync(path.join(dir, 'token.key'));
  const jwks = JSON.parse(fs.readFileSync(path.join(dir, 'jwks.json'), 'utf8'));
  t.equal(jwks.keys.length, 1);
  const pub = crypto.createPublicKey({ key: jwks.keys[0], format: 'jwk' });
  const sig = crypto.sign('sha256', Buffer.from('berth'), crypto.createPrivateKey(key));
  t.ok(crypto.verify('sha256', Buffer.from('berth'), pub, sig), 'the JWKS key verifies what token.key signs');
  const { crv, kty, x, y } = jwks.keys[0];
  const thumbprint = crypto.createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
  t.equal(jwks.keys[0].kid, thumbprint, 'kid is the RFC 7638 thumbprint');
  t.equal(fs.readFileSync(path.join(dir, 'users.yml'), 'utf8'), 'users: {}\n');
  for (const f of ['token.key', 'jwks.json', 'users.yml']) t.equal(fs.statSync(path.join(dir, f)).uid, 65532, `${f} belongs to the image's user`);
  t.equal(fs.statSync(path.join(dir, 'token.key')).mode & 0o777, 0o600, 'the private key is private');
  await promisify(execFile)(process.execPath, [TOKEN_KEYS, dir]);
  t.same(fs.readFileSync(path.join(dir, 'token.key')), key, 'a second run keeps the key');
});
